"""A service's page and its edit form."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.safestring import mark_safe

from portal.actors import Actor
from portal.errors import DomainError
from portal.registry import registry
from portal.urlsecrets import redact_credentials
from portal.web import add_form_errors
from squads import documents, graph, services
from squads.models import Api, Dependency, Membership, Service, ServiceView
from squads.services import SERVICE_PAGE_FIELDS
from squads.stitch import HEAVY, restitch


def panel_templates(kind):
    """Templates other apps registered for this page kind (``portal.registry.panel``)."""
    return [p.template for p in registry.panels[kind]]


def _service_graph(service, deps, dependents):
    url = documents.service_url
    center = graph.Node(service.name, url(service.slug), "self")
    upstream = []
    for d in deps:
        if d.target_service_id:
            t = d.target_service
            upstream.append(
                graph.Node(
                    t.name,
                    url(t.slug),
                    "service",
                    t.owner.name if t.owner else "",
                    t.lifecycle == "deprecated",
                )
            )
        else:
            r = d.target_resource
            upstream.append(
                graph.Node(r.name, f"{url(service.slug)}#resources", "resource", r.type)
            )
    downstream = [
        graph.Node(
            d.source.name,
            url(d.source.slug),
            "service",
            d.source.owner.name if d.source.owner else "",
            d.source.lifecycle == "deprecated",
        )
        for d in dependents
    ]
    return mark_safe(graph.render(center, upstream, downstream))  # noqa: S308 - every label is escaped


def _stitched(service):
    """The service's read form (``squads.stitch``), or None when none was stitched yet."""
    try:
        return service.view
    except ServiceView.DoesNotExist:
        return None


def _service_apis(detail):
    """The APIs the service provides and consumes (the slugs of its stitched detail document,
    in its order), with their owners: one query, none when it has no APIs."""
    provides, consumes = detail["provides_apis"], detail["consumes_apis"]
    if not provides and not consumes:
        return [], []
    found = {
        a.slug: a
        for a in Api.objects.filter(slug__any=[*provides, *consumes]).select_related("owner")
    }
    return [found[s] for s in provides if s in found], [found[s] for s in consumes if s in found]


# what the page shows of a dependency's ends (not their descriptors: large JSON)
DEPENDENCY_COLUMNS = (
    "source_id",
    "target_service_id",
    "target_resource_id",
    *(f"{end}__{f}" for end in ("source", "target_service") for f in ("slug", "name", "lifecycle")),
    "source__owner__name",
    "target_service__owner__name",
    "target_resource__name",
    "target_resource__type",
)


def _dependencies(service):
    """What the service depends on (services by name, then resources) and what depends on it
    (by name), with the other ends' owners: one query."""
    rows = (
        Dependency.objects.filter(Q(source_id=service.pk) | Q(target_service_id=service.pk))
        .select_related(
            "source", "source__owner", "target_service", "target_service__owner", "target_resource"
        )
        .only(*DEPENDENCY_COLUMNS)
    )
    deps, dependents = [], []
    for d in rows:
        if d.source_id == service.pk:
            deps.append(d)
        if d.target_service_id == service.pk:
            dependents.append(d)
    deps.sort(
        key=lambda d: (d.target_service is None, _name(d.target_service or d.target_resource))
    )
    dependents.sort(key=lambda d: d.source.name)
    return deps, dependents


def _name(obj):
    return obj.name if obj is not None else ""


def _can_write(actor, service, members):
    """``actor.can("catalog:write", service.owner)`` without its membership query for a person
    (neither admin nor token): they may when they are among the owner's members, whom the page
    has loaded."""
    if actor.user is None or actor.token is not None or not service.owner_id or actor.is_admin:
        return actor.can("catalog:write", service.owner)
    return any(m.person.user_id == actor.user.pk for m in members)


@login_required
def service_detail(request, slug):
    """The service page, read from the stitched read form: the service with its owner, tribe,
    system, detail document (tags, APIs) and stored scorecard in one query, then dependencies
    (both ways), APIs and the squad's people in one query each. The live panels (runs, releases,
    runtime, signals) load themselves by HTMX."""
    service = get_object_or_404(
        Service.objects.defer(*HEAVY)
        .select_related("owner", "owner__tribe", "system", "system__domain", "view")
        .defer("view__row", "view__document"),
        slug=slug,
    )
    view = _stitched(service)
    if view is None:  # written by raw SQL and not stitched yet: stitch it now
        restitch([service.pk])
        view = ServiceView.objects.get(pk=service.pk)
    provides, consumes = _service_apis(view.detail)
    deps, dependents = _dependencies(service)
    actor = Actor.from_request(request)
    members = []
    if service.owner_id:
        members = list(
            Membership.objects.filter(squad_id=service.owner_id)
            .select_related("person")
            .only("role", "person__name", "person__user_id")
            .order_by("role", "person__name")
        )
    ctx = {
        "service": service,
        "tags": view.detail["tags"],
        "provides": provides,
        "consumes": consumes,
        "deps": deps,
        "dependents": dependents,
        "graph_svg": _service_graph(service, deps, dependents),
        "scorecard": view.scorecard,
        "members": members,
        "can_write": _can_write(actor, service, members),
        "panels": panel_templates("service"),
    }
    return render(request, "squads/service_detail.html", ctx)


service_detail.nav_section = "catalog"


class ServiceForm(forms.ModelForm):
    tags_text = forms.CharField(required=False, label="Tags (comma separated)")

    class Meta:
        model = Service
        fields = list(SERVICE_PAGE_FIELDS)
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}


@login_required
def service_edit(request, slug):
    service = get_object_or_404(Service.objects.select_related("owner"), slug=slug)
    actor = Actor.from_request(request)
    if not actor.can("catalog:write", service.owner):
        raise PermissionDenied(
            "Only members of the owning squad and org admins may edit this service."
        )
    if request.method == "POST":
        form = ServiceForm(request.POST, instance=Service.objects.get(pk=service.pk))
        if form.is_valid():
            fields = {k: form.cleaned_data[k] for k in ServiceForm.Meta.fields}
            tags = [t for t in form.cleaned_data["tags_text"].split(",")]
            try:
                services.update_service(service, actor=actor, tags=tags, **fields)
                messages.success(request, "Service saved.")
                return redirect(service.get_absolute_url())
            except DomainError as exc:
                add_form_errors(form, exc)
    else:
        form = ServiceForm(
            instance=service,
            initial={
                "tags_text": ", ".join(service.tags.values_list("name", flat=True)),
                "repository_url": redact_credentials(service.repository_url),
            },
        )
    return render(request, "squads/service_edit.html", {"service": service, "form": form})


service_edit.nav_section = "catalog"
