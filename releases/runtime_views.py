"""The service page's Runtime panel (HTMX, live) and its Scale / schedule forms."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from infra.models import TerraformRun
from portal.actors import Actor
from portal.errors import DomainError
from portal.web import domain_error_response, signed_in
from releases import runtime, scaling
from releases.drivers import DriverError, get_driver
from releases.models import Environment, ScaleEvent, ScaleSchedule
from squads.models import Service


def _service(slug) -> Service:
    return get_object_or_404(Service.objects.select_related("owner"), slug=slug)


def scalable_environments(service) -> list[Environment]:
    """Where the Scale form may send a service: every environment when it scales through its
    Terraform workspace, else the environments whose driver scales."""
    envs = list(Environment.objects.all())
    if (service.annotations or {}).get(scaling.CAPACITY):
        return envs
    out = []
    for env in envs:
        try:
            if get_driver(env).scales:
                out.append(env)
        except DriverError:
            continue
    return out


def timeline(service, limit: int = 8) -> list[ScaleEvent]:
    """The last scale actions; one planned through Terraform carries its run (``e.run``), so
    the timeline shows where the plan is now (applied, waiting for approval, errored)."""
    events = list(ScaleEvent.objects.filter(service=service).select_related("environment")[:limit])
    ids = [e.terraform_run_id for e in events if e.terraform_run_id]
    runs = {r.pk: r for r in TerraformRun.objects.filter(pk__in=ids)} if ids else {}
    for e in events:
        e.run = runs.get(e.terraform_run_id)
    return events


@login_required
def runtime_panel(request, slug):
    service = _service(slug)
    actor = Actor.from_request(request)
    runtime.watch(service)
    ctx = {
        "service": service,
        "runtime": runtime.runtime_snapshot(service),
        "schedules": ScaleSchedule.objects.filter(service=service).select_related("environment"),
        "events": timeline(service),
        "environments": scalable_environments(service),
        "can_scale": any(actor.can(s, service.owner_id) for s in scaling.SCOPES),
    }
    return render(request, "releases/runtime_panel.html#body", ctx)


@require_POST
@signed_in("scale this service")
def scale(request, slug):
    service = _service(slug)
    try:
        event = scaling.scale_service(
            service,
            actor=Actor.from_request(request, door="ui"),
            environment=request.POST.get("environment", ""),
            replicas=request.POST.get("replicas", ""),
            reason=request.POST.get("reason", ""),
        )
    except DomainError as exc:
        return domain_error_response(request, exc, service.get_absolute_url())
    verb = "planned in Terraform" if event.status == "planned" else "scaled"
    messages.success(
        request, f"{service.slug} {verb}: {event.replicas} in {event.environment.name}."
    )
    return redirect(service.get_absolute_url())


@require_POST
@signed_in("scale this service")
def schedule_create(request, slug):
    service = _service(slug)
    form = request.POST
    try:
        scaling.create_schedule(
            service,
            actor=Actor.from_request(request, door="ui"),
            environment=form.get("environment", ""),
            name=form.get("name", ""),
            cron=form.get("cron", ""),
            duration_minutes=form.get("duration_minutes", ""),
            timezone=form.get("timezone", "") or "UTC",
            replicas=form.get("replicas", ""),
            base_replicas=form.get("base_replicas", ""),
        )
    except DomainError as exc:
        return domain_error_response(request, exc, service.get_absolute_url())
    messages.success(request, "Schedule saved; beat applies it within a minute.")
    return redirect(service.get_absolute_url())


@require_POST
@signed_in("scale this service")
def schedule_delete(request, slug, pk):
    service = _service(slug)
    schedule = get_object_or_404(ScaleSchedule, pk=pk, service=service)
    try:
        scaling.delete_schedule(schedule, actor=Actor.from_request(request, door="ui"))
    except DomainError as exc:
        return domain_error_response(request, exc, service.get_absolute_url())
    messages.success(request, "Schedule removed.")
    return redirect(service.get_absolute_url())
