"""Pipelines' receiver of verified GitHub pushes (the endpoint is ``portal.inbound``).

A service is reached when its ``repository_url`` is one of the payload repository's forms and the
body was signed with its ``webhook_secret`` (or ``GITHUB_WEBHOOK_SECRET`` when it has none). A
branch push starts a run per reached service whose last known branch filters match (the worker
checks again at the commit); a redelivered ``X-GitHub-Delivery`` returns the runs it started the
first time. Tags start nothing: a spec's filters (``branches:``) only name branches.
"""

from pipelines import services
from pipelines.github import pulls
from pipelines.models import PipelineConfig, PipelineRun
from pipelines.spec import branch_matches
from portal.errors import Invalid
from portal.inbound import Match, Push, Receiver, Refused, repository_keys, using_repository
from squads.models import Service


def matching_services(repo: dict) -> list:
    return list(using_repository(Service.objects.select_related("owner"), repository_keys(repo)))


def _secrets(keys) -> set[str]:
    rows = using_repository(Service.objects.exclude(webhook_secret=""), keys)
    return set(rows.values_list("webhook_secret", flat=True))


def _match(repo, signed_with, default) -> Match:
    candidates = matching_services(repo)
    verified = [s for s in candidates if (s.webhook_secret or default) in signed_with]
    return Match(candidates, verified, [s.slug for s in verified])


def _run_entry(run, service) -> dict:
    return {
        "id": run.pk,
        "kind": "pipeline",
        "service": service.slug,
        "number": run.number,
        "url": run.get_absolute_url(),
    }


def _push(push: Push, verified: list) -> dict:
    if push.kind != "branch":
        what = f"tag {push.name}" if push.kind == "tag" else push.ref
        return {"runs": [], "reason": f"{what} is not a branch; pipelines run on branch pushes"}
    known = dict(
        PipelineConfig.objects.filter(service__in=verified).values_list(
            "service_id", "known_branches"
        )
    )
    runs, skipped, duplicate = [], [], False
    for service in verified:
        if not branch_matches(known.get(service.pk), push.name):
            skipped.append(service.slug)
            continue
        try:
            run, created = services.trigger_run(
                service,
                actor=push.actor,
                ref=push.name,
                commit=push.after,
                trigger=PipelineRun.Trigger.PUSH,
                delivery_id=push.delivery,
                commit_message=push.message,
                commit_author=push.author,
            )
        except Invalid as exc:
            raise Refused(exc.text) from None
        if created:
            pulls.attach_push_check(run, push)  # issue 18: reported as a GitHub check run
        duplicate = duplicate or not created
        runs.append(_run_entry(run, service))
    result: dict = {"runs": runs, "duplicate": duplicate}
    if skipped:
        result["skipped"] = {
            "services": skipped,
            "reason": f"branch {push.name!r} not matched by the branch filters",
        }
    return result


RECEIVER = Receiver(
    name="pipelines",
    label="services",
    secrets=_secrets,
    match=_match,
    push=_push,
    pull_request=pulls.on_pull_request,
)
