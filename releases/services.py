"""Release domain operations: one function per action, called by every door.

Each takes the row lock, checks the transition is legal (409 with the current state
otherwise), writes the audit event with the actor's door, emits the outbound event, and lets
the controller record the wanted state at once (``controller.drive``: weight, promote or
rollback owed to the driver). No network inside the lock: after commit a worker hands the
wanted call to the deploy driver (``sync.sync``) and the release shows "applying" until the
driver confirms.
Permissions: members of the owning squad, org admins, tokens of that squad with
``releases:promote``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.actors import Actor
from portal.audit import record
from portal.errors import Conflict, Invalid
from releases import analysis, controller, strategy
from releases.models import (
    ACTIVE_RELEASE,
    AnalysisStatus,
    AnalysisTemplate,
    Environment,
    Release,
    ReleaseStatus,
    StrategyOverride,
)

SCOPE = "releases:promote"


def _locked(release_id) -> Release:
    return (
        Release.objects.select_for_update(of=("self",), no_key=True)
        .select_related("service", "service__owner", "environment")
        .get(pk=getattr(release_id, "pk", release_id))
    )


def _audit(actor, action, r, **data):
    record(
        actor,
        action,
        r,
        squad=r.service.owner,
        data={**controller.release_facts(r), **data},
    )


def _environment(environment: Environment | str) -> Environment:
    if isinstance(environment, Environment):
        return environment
    found = Environment.objects.filter(name=environment).first()
    if found is None:
        raise Invalid(errors={"environment": ["No such environment."]})
    return found


def create_release(
    service: Any,
    *,
    actor: Actor,
    environment: Environment | str,  # an Environment or its name
    version: str,
    commit: str = "",
    steps: list | None = None,
    trigger: str = "api",
    pipeline_run: Any = None,
    deploy_params: dict | None = None,
) -> Release:
    """Start a release of ``version`` of ``service`` to ``environment``.

    409 when the service already has a release in flight there."""
    actor.require(SCOPE, service.owner, "starting a release")
    env = _environment(environment)
    version = (version or "").strip()
    if not version:
        raise Invalid(errors={"version": ["A version is required."]})
    try:
        resolved, source = strategy.resolve(service, env, steps)
    except ValidationError as exc:
        raise Invalid(errors={"strategy": exc.messages}) from None
    with transaction.atomic():
        _refuse_second_in_flight(service, env)
        r = _insert_release(
            service=service,
            environment=env,
            version=version[:200],
            commit_sha=(commit or "")[:64],
            strategy=resolved,
            strategy_source=source,
            started_by=actor.label[:200],
            trigger=trigger,
            pipeline_run=pipeline_run,
            deploy_params=deploy_params or {},
        )
        r = _locked(r.pk)
        controller.note(
            r, "action", f"release created by {actor.label}", actor=actor.label, door=actor.door
        )
        _audit(actor, "release.create", r, strategy_source=source)
        controller.drive(r, actor=actor.label, door=actor.door)
        controller.kick(r.pk)
    return r


def _refuse_second_in_flight(service, env) -> None:
    """409 (locking the one in flight) when ``service`` has a release in flight in ``env``."""
    active = (
        Release.objects.select_for_update(no_key=True)
        .filter(service=service, environment=env, status__in=ACTIVE_RELEASE)
        .first()
    )
    if active is not None:
        raise Conflict(
            f"{service.slug} already has release {active.pk} ({active.version}) "
            f"{active.status} in {env.name}.",
            state=controller.state(active),
        )


def _insert_release(*, service, environment, **fields) -> Release:
    """The new row; 409 when a concurrent start won the one-in-flight constraint."""
    try:
        with transaction.atomic():
            return Release.objects.create(service=service, environment=environment, **fields)
    except IntegrityError:
        active = Release.objects.filter(
            service=service, environment=environment, status__in=ACTIVE_RELEASE
        ).first()
        raise Conflict(
            f"{service.slug} already has a release in flight in {environment.name}.",
            state=controller.state(active) if active else None,
        ) from None


def promote_release(release: Release, *, actor: Actor, step: int | None = None) -> Release:
    """A paused release goes on to its next step.

    ``step`` is the step index the caller saw paused (the page sends it): a promote meant for a
    pause that is already behind is refused, so two clicks never move the release two steps.
    Without ``step`` (bots), a pause that a promote reached less than
    ``RELEASES_PROMOTE_DEBOUNCE_SECONDS`` ago is refused too: concurrent promotes of one pause
    cannot also promote the next one.
    """
    actor.require(SCOPE, release.service.owner, "promoting a release")
    with transaction.atomic():
        r = _locked(release)
        if r.status != ReleaseStatus.PAUSED:
            raise Conflict(
                f"Release {r.pk} is {r.status}; only a paused release can be promoted.",
                state=controller.state(r),
            )
        if step is not None and int(step) != r.step_index:
            raise Conflict(
                f"Release {r.pk} is no longer at step {int(step) + 1}: it was promoted already "
                f"and is now paused at step {r.step_index + 1}.",
                state=controller.state(r),
            )
        if step is None:
            last = list(r.events.filter(kind="status").order_by("-at", "-id")[:2])
            debounce = settings.RELEASES_PROMOTE_DEBOUNCE_SECONDS
            if (
                len(last) == 2
                and last[0].to_status == ReleaseStatus.PAUSED
                and last[1].from_status == ReleaseStatus.PAUSED  # a promote led here
                and (timezone.now() - last[1].at).total_seconds() < debounce
            ):
                raise Conflict(
                    f"Release {r.pk} reached this pause {debounce:g} s ago or less (another "
                    "promote just moved it); promote again, or send the step you mean.",
                    state=controller.state(r),
                )
        was = r.step_index
        r.step_index += 1
        _promoted(r, actor, f"promoted by {actor.label}", "release.promote", was)
    return r


def promote_release_full(release: Release, *, actor: Actor) -> Release:
    """Skip the remaining steps: all traffic to the new version, release succeeded."""
    actor.require(SCOPE, release.service.owner, "promoting a release to 100 %")
    with transaction.atomic():
        r = _locked(release)
        if r.status not in (ReleaseStatus.PROGRESSING, ReleaseStatus.PAUSED, ReleaseStatus.PENDING):
            raise Conflict(
                f"Release {r.pk} is {r.status}; it cannot be promoted to 100 %.",
                state=controller.state(r),
            )
        was = r.step_index
        r.step_index = len(r.strategy or [])
        r.desired_weight = 100
        _promoted(r, actor, f"promoted to 100 % by {actor.label}", "release.promote_full", was)
    return r


def _promoted(r: Release, actor: Actor, message: str, action: str, from_step: int) -> None:
    """A promote (to the next step or to 100 %) moves the release on; audited, driven."""
    r.pause_until = None
    r.message = ""
    controller.transition(
        r,
        ReleaseStatus.PROGRESSING,
        message,
        actor=actor.label,
        door=actor.door,
        event_type="release.promoted",
    )
    _audit(actor, action, r, from_step=from_step)
    controller.drive(r, actor=actor.label, door=actor.door)
    controller.kick(r.pk)


def abort_release(release: Release, *, actor: Actor, reason: str = "") -> Release:
    """All traffic back to stable at once; the release ends aborted."""
    actor.require(SCOPE, release.service.owner, "aborting a release")
    with transaction.atomic():
        r = _locked(release)
        if r.status not in ACTIVE_RELEASE:
            raise Conflict(
                f"Release {r.pk} is {r.status}; only a release in flight can be aborted.",
                state=controller.state(r),
            )
        r.desired_weight = 0
        r.driver_action = "rollback"
        r.pause_until = None
        controller.transition(
            r,
            ReleaseStatus.ABORTED,
            f"aborted by {actor.label}" + (f": {reason}" if reason else ""),
            actor=actor.label,
            door=actor.door,
        )
        _audit(actor, "release.abort", r, reason=reason[:500])
        controller.drive(r, actor=actor.label, door=actor.door)
        controller.kick(r.pk)
    return r


def _paused_at_analysis(r: Release) -> bool:
    """Paused by an inconclusive (or errored) analysis of the current step."""
    return (
        r.status == ReleaseStatus.PAUSED
        and "analysis" in (r.current_step or {})
        and r.analysis_runs.filter(
            generation=r.generation,
            step_index=r.step_index,
            status__in=[AnalysisStatus.INCONCLUSIVE, AnalysisStatus.ERROR],
        ).exists()
    )


def _retryable(r: Release) -> bool:
    return r.status in (ReleaseStatus.FAILED, ReleaseStatus.ABORTED) or _paused_at_analysis(r)


def allowed_actions(release: Release, actor: Actor) -> set[str]:
    """What ``actor`` may do next with ``release`` (the same rules the actions enforce)."""
    if not actor.can(SCOPE, release.service.owner):
        return set()
    allowed = set()
    if release.status == ReleaseStatus.PAUSED:
        allowed.add("promote")
    if release.status in (ReleaseStatus.PROGRESSING, ReleaseStatus.PAUSED, ReleaseStatus.PENDING):
        allowed.add("promote_full")
    if release.status in ACTIVE_RELEASE:
        allowed.add("abort")
    if _retryable(release):
        allowed.add("retry")
    return allowed


def retry_release(release: Release, *, actor: Actor) -> Release:
    """Start a failed or aborted release again from its first step, or repeat the analysis a
    paused release stopped at (inconclusive / error)."""
    actor.require(SCOPE, release.service.owner, "retrying a release")
    with transaction.atomic():
        r = _locked(release)
        paused_at_analysis = _paused_at_analysis(r)
        if r.status not in (ReleaseStatus.FAILED, ReleaseStatus.ABORTED) and not paused_at_analysis:
            raise Conflict(
                f"Release {r.pk} is {r.status}; only a failed or aborted release, or one paused "
                "by an inconclusive analysis, can be retried.",
                state=controller.state(r),
            )
        r.generation += 1
        r.message = ""
        r.pause_until = None
        if not paused_at_analysis:
            r.step_index = 0
            r.driver_action = ""
        try:
            with transaction.atomic():
                controller.transition(
                    r,
                    ReleaseStatus.PROGRESSING,
                    f"retried by {actor.label}",
                    actor=actor.label,
                    door=actor.door,
                    event_type="release.started",
                )
                r.save(update_fields=controller.DRIVEN_FIELDS)
        except IntegrityError:
            raise Conflict(
                f"{r.service.slug} already has another release in flight in {r.environment.name}.",
                state=controller.state(Release.objects.get(pk=r.pk)),
            ) from None
        _audit(actor, "release.retry", r)
        controller.drive(r, actor=actor.label, door=actor.door)
        controller.kick(r.pk)
    return r


# --- strategies and analysis templates (the API; admins also have Django admin) ------------------
def _strategy_audit(actor, action, override, steps):
    record(
        actor,
        action,
        override,
        squad=override.service.owner,
        data={
            "service": override.service.slug,
            "environment": override.environment.name if override.environment else None,
            "steps": steps,
        },
    )


def _create_or_conflict(model, message, **fields):
    """A new row, or 409 with ``message`` when a unique constraint says it exists."""
    try:
        with transaction.atomic():
            return model.objects.create(**fields)
    except IntegrityError:
        raise Conflict(message, state="exists") from None


def _validated(validate, value, field: str):
    """``validate(value)``; its ValidationError as Invalid naming ``field``."""
    try:
        return validate(value)
    except ValidationError as exc:
        raise Invalid.from_django(exc, field=field) from None


def save_strategy(
    service: Any,
    *,
    actor: Actor,
    environment: Environment | None,
    steps: list,
    override: Any = None,
) -> Any:
    """Create a service's own canary steps for ``environment`` (None: every environment) or,
    given ``override``, replace its steps. Owners of the service and org admins."""
    actor.require(SCOPE, service.owner, f"the release strategy of {service.slug}")
    steps = _validated(strategy.validate, steps, "steps")
    with transaction.atomic():
        if override is None:
            where = environment.name if environment else "every environment"
            override = _create_or_conflict(
                StrategyOverride,
                f"{service.slug} already has a release strategy for {where}: change that one.",
                service=service,
                environment=environment,
                steps=steps,
            )
            _strategy_audit(actor, "release.strategy_created", override, steps)
        else:
            override.steps = steps
            override.save(update_fields=["steps", "updated_at"])
            _strategy_audit(actor, "release.strategy_changed", override, steps)
    return override


def delete_strategy(override: Any, *, actor: Actor) -> None:
    """Back to the environment's default steps. Owners of the service and org admins."""
    actor.require(SCOPE, override.service.owner, f"the release strategy of {override.service.slug}")
    with transaction.atomic():
        _strategy_audit(actor, "release.strategy_deleted", override, override.steps)
        override.delete()


def template_users(name: str) -> list[str]:
    """Where the analysis template ``name`` is referenced: strategies and active releases."""

    def uses(steps):
        return any(
            isinstance(s, dict) and (s.get("analysis") or {}).get("template") == name
            for s in steps or []
        )

    found = [
        f"the strategy of {o.service.slug}" + (f" in {o.environment.name}" if o.environment else "")
        for o in StrategyOverride.objects.select_related("service", "environment")
        if uses(o.steps)
    ]
    found += [
        f"release #{r.pk} ({r.service.slug})"
        for r in Release.objects.filter(status__in=ACTIVE_RELEASE).select_related("service")
        if uses(r.strategy)
    ]
    return found


def save_template(
    template: Any, *, actor: Actor, name: str, description: str, metrics: list
) -> Any:
    """Create (``template`` None) or change an analysis template. Org admins only."""
    actor.require_admin("change analysis templates")
    metrics = _validated(analysis.validate_metrics, metrics, "metrics")
    with transaction.atomic():
        if template is None:
            template = _create_or_conflict(
                AnalysisTemplate,
                f"An analysis template named {name!r} exists: change that one.",
                name=name,
                description=description,
                metrics=metrics,
            )
            action = "release.template_created"
        else:
            template.description, template.metrics = description, metrics
            template.save(update_fields=["description", "metrics", "updated_at"])
            action = "release.template_changed"
        record(actor, action, template, data={"name": template.name, "metrics": metrics})
    return template


def delete_template(template: Any, *, actor: Actor) -> None:
    """Org admins only; refused (409) while a strategy or an active release uses it."""
    actor.require_admin("change analysis templates")
    users = template_users(template.name)
    if users:
        raise Conflict(
            f"The analysis template {template.name!r} is in use by " + "; ".join(users[:5]),
            state="in_use",
        )
    with transaction.atomic():
        record(actor, "release.template_deleted", template, data={"name": template.name})
        template.delete()
