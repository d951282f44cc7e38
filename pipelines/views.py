"""Pipeline pages. Thin: each POST calls one function in ``pipelines.services``."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from pipelines import approvals, dag, jenkins, logs, services
from pipelines.ansi import strip, to_html
from pipelines.artifacts import artifact_response
from pipelines.board import board_section
from pipelines.filters import PipelineRunFilter
from pipelines.github import actions
from pipelines.models import (
    ACTIVE_STATUSES,
    JobRun,
    PipelineConfig,
    PipelineRun,
    PipelineSecret,
    RunStatus,
    StepRun,
)
from portal import joblog, logviews
from portal.actors import Actor
from portal.errors import DomainError
from portal.listing import render_list
from portal.web import board_view, domain_error_response
from squads.models import Service, Squad

LOG_PAGE_BYTES = logviews.LOG_PAGE_BYTES


def _nav(view):
    view.nav_section = "pipelines"
    return view


@_nav
@login_required
def run_list(request):
    qs = PipelineRun.objects.select_related("service", "service__owner")
    flt = PipelineRunFilter(request.GET, queryset=qs)
    active = PipelineRun.objects.filter(status__in=ACTIVE_STATUSES)
    return render_list(
        request,
        "pipelines/run_list.html",
        flt,
        statuses=RunStatus.values,
        counts={"active": active.count()},
    )


def _run_context(request, run):
    actor = Actor.from_request(request)
    steps = list(run.steps.all())
    return {
        "run": run,
        "service": run.service,
        "stages": logs.step_groups(steps),
        "graph": dag.graph(run) if run.spec and run.spec.get("jobs") else None,
        "artifacts": list(run.artifacts.filter(expires_at__gt=timezone.now()).order_by("name")),
        "approvals": [(a, actor.can("pipelines:run", a.squad)) for a in approvals.pending(run)],
        "steps": steps,
        "can_write": actor.can("pipelines:run", run.service.owner),
        "allowed": services.allowed_actions(run, actor),
    }


def _log_ctx(run, text):
    return {"log_html": to_html(text), "log_url": reverse("pipelines:run_log", args=[run.pk])}


@_nav
@login_required
def run_detail(request, pk):
    run = get_object_or_404(PipelineRun.objects.select_related("service", "service__owner"), pk=pk)
    ctx = _run_context(request, run)
    start = logs.log_window_start(run, LOG_PAGE_BYTES)
    log = logs.log_page(run, start, limit=LOG_PAGE_BYTES)
    ctx.update(_log_ctx(run, log["text"]), log=log, log_start=start)
    return render(request, "pipelines/run_detail.html", ctx)


@login_required
def run_log_text(request, pk):
    """The whole log as plain text (ANSI stripped), streamed chunk by chunk."""
    run = get_object_or_404(PipelineRun.objects.select_related("service"), pk=pk)
    response = StreamingHttpResponse(
        (strip(text) for text in joblog.full_text(run)), content_type="text/plain; charset=utf-8"
    )
    response["Content-Disposition"] = f'inline; filename="{run.service.slug}-{run.number}.log"'
    return response


@login_required
def run_artifact(request, pk, artifact_id):
    """Download one artifact of the run (a gzipped tar)."""
    run = get_object_or_404(PipelineRun.objects.select_related("service"), pk=pk)
    return artifact_response(run, artifact_id)


@login_required
def run_log(request, pk):
    """The live tail: new log text after ``offset`` (appended out of band), the steps table and
    the next poller. Answers 286 when the log is complete so HTMX stops polling."""
    # the run is read before the log, so that nothing written after its status is missed
    run = get_object_or_404(PipelineRun.objects.select_related("service", "service__owner"), pk=pk)

    def read_page(offset):
        log = logs.log_page(run, offset, limit=LOG_PAGE_BYTES)
        ctx.update(_run_context(request, run), **_log_ctx(run, log["text"]))
        return log

    ctx: dict = {}
    return logviews.tail(request, "pipelines/run_detail.html#tail", ctx, read_page)


@login_required
def step_log(request, pk, index):
    """One step's part of the run log: a page with a live tail (HTMX: the tail alone)."""
    run = get_object_or_404(PipelineRun.objects.select_related("service", "service__owner"), pk=pk)
    step = get_object_or_404(StepRun.objects.select_related("run"), run=run, index=index)
    url = reverse("pipelines:step_log", args=[run.pk, step.index])
    return _part_log(
        request, run, step, url, lambda o: logs.step_log_page(step, o, limit=LOG_PAGE_BYTES)
    )


def _part_log(request, run, part, log_url: str, page):
    """The step log page (a step's or a job's part of a run): ``page(offset)`` reads the log."""
    ctx = {"run": run, "service": run.service, "step": part, "log_url": log_url}

    def read_page(offset):
        log = page(offset)
        ctx["log_html"] = to_html(log["text"])
        return log

    template = "pipelines/step_log.html#tail" if request.htmx else "pipelines/step_log.html"
    return logviews.tail(request, template, ctx, read_page)


def _button(load, back, act):
    """The POST view of a button: ``load(**url_kwargs)`` fetches the object (404),
    ``act(request, obj, actor, **url_kwargs)`` calls the service and answers (the message to
    show or "", where to go next or None for ``back(obj)``); a refusal goes to ``back(obj)``."""

    @require_POST
    @login_required
    def view(request, **kwargs):
        obj = load(**kwargs)
        try:
            text, to = act(request, obj, Actor.from_request(request), **kwargs)
        except DomainError as exc:
            return domain_error_response(request, exc, back(obj))
        if text:
            messages.success(request, text)
        return redirect(to or back(obj))

    return view


def _run(pk):
    return get_object_or_404(PipelineRun.objects.select_related("service"), pk=pk)


def _service(slug, **_):
    return get_object_or_404(Service.objects.select_related("owner"), slug=slug)


def _run_page(run) -> str:
    return run.get_absolute_url()


def _pipeline_page(anchor: str = ""):
    return lambda service: reverse("pipelines:service_pipeline", args=[service.slug]) + anchor


def _decide(approve: bool):
    def act(request, run, actor, **_):
        step = request.POST.get("step", "")
        a = approvals.decide_approval(
            run,
            actor=actor,
            approve=approve,
            step=int(step) if step.isdigit() else None,
            comment=request.POST.get("comment", "")[:500],
        )
        return f"{a.step.name}: {a.status}.", None

    return act


def _cancel(request, run, actor, **_):
    services.cancel_run(run, actor=actor)
    return f"Cancel requested for run #{run.number}.", None


def _rerun(request, run, actor, **_):
    new = services.rerun_run(run, actor=actor)
    return f"Re-run of #{run.number} queued as #{new.number}.", new.get_absolute_url()


def _trigger(request, service, actor, **_):
    run, _created = services.trigger_run(
        service,
        actor=actor,
        ref=request.POST.get("ref", ""),
        commit=request.POST.get("commit", ""),
        trigger=PipelineRun.Trigger.MANUAL,
    )
    return f"Run #{run.number} of {service.name} queued.", run.get_absolute_url()


def _save_spec(request, service, actor, **_):
    services.save_spec(service, actor=actor, text=request.POST.get("spec", ""))
    return "Pipeline spec saved.", None


def _set_secret(request, service, actor, **_):
    post = request.POST
    secret = services.set_secret(
        service, actor=actor, name=post.get("name", ""), value=post.get("value", "")
    )
    return f"Secret {secret.name} saved.", None


def _delete_secret(request, service, actor, name, **_):
    deleted = services.delete_secret(service, actor=actor, name=name)
    return (f"Secret {name} deleted." if deleted else ""), None


run_approve = _button(_run, _run_page, _decide(True))
run_reject = _button(_run, _run_page, _decide(False))
run_cancel = _button(_run, _run_page, _cancel)
run_rerun = _button(_run, _run_page, _rerun)
service_trigger = _button(_service, _pipeline_page(), _trigger)
spec_save = _button(_service, _pipeline_page("#spec"), _save_spec)
secret_set = _button(_service, _pipeline_page("#secrets"), _set_secret)
secret_delete = _button(_service, _pipeline_page("#secrets"), _delete_secret)


@login_required
def job_log(request, pk, index):
    """One job's own log (``jobs:`` pipelines): its checkout, steps, cache and artifacts."""
    run = get_object_or_404(PipelineRun.objects.select_related("service"), pk=pk)
    job = get_object_or_404(JobRun, run=run, index=index)
    needs = ", ".join(job.needs) or "nothing"
    # shown by the step log page: stage / name, status, and the line under the title
    part = {"stage": "job", "name": job.name, "status": job.status, "command": f"needs {needs}"}
    url = reverse("pipelines:job_log", args=[run.pk, job.index])
    return _part_log(request, run, part, url, lambda o: joblog.page(job, o, limit=LOG_PAGE_BYTES))


@login_required
def jenkins_builds(request, slug):
    """The recent builds of the service's Jenkins job (``jenkins.io/job-full-name``)."""
    service = get_object_or_404(Service, slug=slug)
    builds, error = jenkins.service_builds(service) if jenkins.service_job(service) else ([], "")
    ctx = {"job": jenkins.service_job(service), "builds": builds, "error": error}
    if not ctx["job"]:
        ctx["error"] = f"The service has no {jenkins.ANNOTATION} annotation."
    return render(request, "pipelines/_jenkins_builds.html", ctx)


def _actions_ctx(service) -> dict:
    """The service's GitHub Actions runs as beat last read them (``github.com/project-slug``)."""
    repo = actions.repository(service)
    if not repo:
        return {}
    runs, poll = actions.recent(service)
    flows = actions.workflow_names(service)
    return {
        "actions_repo": repo,
        "actions_runs": runs,
        "actions_poll": poll,
        "actions_flows": flows,
    }


@_nav
@login_required
def service_pipeline(request, slug):
    service = get_object_or_404(Service.objects.select_related("owner"), slug=slug)
    actor = Actor.from_request(request)
    runs = PipelineRun.objects.filter(service=service).select_related("service")
    page = Paginator(runs, 25).get_page(request.GET.get("page"))
    config = PipelineConfig.objects.filter(service=service).first()
    ctx = {
        "service": service,
        "page": page,
        "config": config,
        "secrets": PipelineSecret.objects.filter(service=service).only(
            "name", "updated_at", "updated_by"
        ),
        "can_write": actor.can("pipelines:run", service.owner),
        "webhook_url": request.build_absolute_uri(reverse("github_webhook")),
        "jenkins_job": jenkins.service_job(service),
        **_actions_ctx(service),
    }
    return render(request, "pipelines/service_pipeline.html", ctx)


board = board_view(board_section)


@login_required
def service_panel(request, slug):
    """The body of the pipeline panel on the service page (lazy-loaded and refreshed by HTMX)."""
    service = get_object_or_404(Service.objects.select_related("owner"), slug=slug)
    actor = Actor.from_request(request)
    ctx = {
        "service": service,
        "runs": PipelineRun.objects.filter(service=service).select_related("service")[:5],
        "can_write": actor.can("pipelines:run", service.owner),
        "webhook_url": request.build_absolute_uri(reverse("github_webhook")),
        "jenkins_job": jenkins.service_job(service),
        **_actions_ctx(service),
    }
    return render(request, "pipelines/_service_panel_body.html", ctx)


@login_required
def squad_panel(request, slug):
    """The body of the pipeline panel on the squad page: the squad's latest runs."""
    squad = get_object_or_404(Squad, slug=slug)
    runs = PipelineRun.objects.filter(service__owner=squad).select_related("service")[:8]
    return render(request, "pipelines/_squad_panel_body.html", {"squad": squad, "runs": runs})
