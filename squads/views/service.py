"""A service's page and its edit form."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.safestring import mark_safe

from portal.actors import Actor
from portal.errors import DomainError
from portal.registry import registry
from portal.urlsecrets import redact_credentials
from portal.web import add_form_errors
from squads import documents, graph, services
from squads.models import Service
from squads.services import SERVICE_PAGE_FIELDS
from squads.views import service_data


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


def _can_write(actor, service, members):
    """``actor.can("catalog:write", service.owner)`` without its membership query for a person
    (neither admin nor token): they may when they are among the owner's members, whom the page
    has loaded."""
    if actor.user is None or actor.token is not None or not service.owner_id or actor.is_admin:
        return actor.can("catalog:write", service.owner)
    return any(m.person.user_id == actor.user.pk for m in members)


@login_required
def service_detail(request, slug):
    """The service page, read from the stitched read form in one statement
    (``service_data``): the service with its owner, tribe, system, tags and stored scorecard,
    its dependencies both ways, its APIs and its squad's people. The live panels (runs,
    releases, runtime, signals) load themselves by HTMX."""
    page = service_data.service_page(slug)
    service = page.service
    actor = Actor.from_request(request)
    ctx = {
        "service": service,
        "tags": page.tags,
        "provides": page.provides,
        "consumes": page.consumes,
        "deps": page.deps,
        "dependents": page.dependents,
        "graph_svg": _service_graph(service, page.deps, page.dependents),
        "scorecard": page.scorecard,
        "members": page.members,
        "can_write": _can_write(actor, service, page.members),
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
