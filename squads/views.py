from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Count, Exists, OuterRef, Prefetch
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import get_template
from django.utils.html import escape, format_html
from django.utils.safestring import mark_safe

from portal.actors import Actor
from portal.errors import DomainError
from portal.limits import body_limit
from portal.registry import registry
from portal.urlsecrets import redact_credentials
from portal.web import add_form_errors
from squads import backstage, graph, scorecards, services
from squads.backstage.sources import MAX_SOURCE_BYTES
from squads.cache import CATALOG
from squads.filters import ServiceFilter
from squads.models import (
    Api,
    Dependency,
    Lifecycle,
    Membership,
    Person,
    Service,
    ServiceView,
    Squad,
    System,
    Tag,
    Tribe,
)
from squads.services import SERVICE_PAGE_FIELDS

SORTS = {
    "name": "name",
    "-name": "-name",
    "owner": "owner__name",
    "-owner": "-owner__name",
    "tier": "tier",
    "-tier": "-tier",
    "lifecycle": "lifecycle",
    "-lifecycle": "-lifecycle",
    "updated": "-updated_at",
}
PAGE_SIZE = 25


def _panels(kind):
    """Templates other apps registered for this page kind (``portal.registry.panel``)."""
    return [p.template for p in registry.panels[kind]]


def _extra_columns(services_page):
    """Per-service facts contributed by other apps, loaded in one query each."""
    ids = [s.pk for s in services_page]
    return {column.key: column.load(ids) for column in registry.catalog_columns}


# A dropdown lists at most this many choices; a bigger catalog gets a text field instead (a
# 10,000-option <select> is neither usable nor cheap to render).
FILTER_SELECT_MAX = 300


def _filter_field(name, choices, selected, empty_label, html_id=""):
    """The HTML of one catalog filter: a <select> of ``choices`` ((value, label) pairs, one
    query, at most FILTER_SELECT_MAX + 1 rows fetched), or a text input when there are more."""
    choices = list(choices[: FILTER_SELECT_MAX + 1])
    id_attr = format_html(' id="{}"', html_id) if html_id else ""
    if len(choices) > FILTER_SELECT_MAX:
        return format_html(
            '<input type="search" name="{}"{} value="{}" placeholder="{} (slug)" style="width:140px">',
            name,
            id_attr,
            selected or "",
            empty_label.lower(),
        )
    options = mark_safe(  # noqa: S308 - every value and label escaped
        "".join(
            f'<option value="{escape(v)}"{" selected" if v == selected else ""}>'
            f"{escape(label)}</option>"
            for v, label in choices
        )
    )
    return format_html(
        '<select name="{}"{}><option value="">{}</option>{}</select>',
        name,
        id_attr,
        empty_label,
        options,
    )


def _service_types(limit):
    """The distinct service types, as (value, label) pairs. On PostgreSQL a recursive query
    hops along the ``type`` index (one probe per type) instead of scanning every service."""
    if connection.vendor != "postgresql":
        return Service.objects.order_by("type").values_list("type", "type").distinct()[:limit]
    table = Service._meta.db_table
    sql = f"""
        WITH RECURSIVE t(type) AS (
            (SELECT type FROM {table} ORDER BY type LIMIT 1)
            UNION ALL
            SELECT (SELECT s.type FROM {table} s WHERE s.type > t.type ORDER BY s.type LIMIT 1)
            FROM t WHERE t.type IS NOT NULL
        )
        SELECT type FROM t WHERE type IS NOT NULL LIMIT %s"""
    with connection.cursor() as cursor:
        cursor.execute(sql, [limit])
        return [(t, t) for (t,) in cursor.fetchall()]


def _filter_choices():
    """(value, label) pairs of every catalog filter, at most FILTER_SELECT_MAX + 1 each."""
    limit = FILTER_SELECT_MAX + 1
    return {
        "owner": list(Squad.objects.order_by("name").values_list("slug", "name")[:limit]),
        "tribe": list(
            Tribe.objects.filter(Exists(Squad.objects.filter(tribe=OuterRef("pk"))))
            .order_by("name")
            .values_list("slug", "name")[:limit]
        ),
        "system": list(System.objects.order_by("name").values_list("slug", "name")[:limit]),
        "type": list(_service_types(limit)),
        "tag": list(
            Tag.objects.filter(
                Exists(Service.tags.through.objects.filter(tag_id=OuterRef("pk")))
            ).values_list("name", "name")[:limit]
        ),
    }


def stored_scorecards(services) -> dict:
    """{service id: scorecard} as stitched at write time (squads/stitch.py): one query."""
    ids = [s.pk for s in services]
    return dict(ServiceView.objects.filter(pk__any=ids).values_list("service_id", "scorecard"))


def _service_results(request):
    """The HTML of the catalog's result table and pager for this query string."""
    base = Service.objects.select_related("owner", "owner__tribe", "system").prefetch_related(
        Prefetch("tags", queryset=Tag.objects.only("name"))
    )
    flt = ServiceFilter(request.GET, queryset=base)
    qs = flt.qs
    sort = request.GET.get("sort", "")
    if sort in SORTS:
        qs = qs.order_by(SORTS[sort], "name")
    elif not (request.GET.get("q") or request.GET.get("search")):
        qs = qs.order_by("name")
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    cards = stored_scorecards(page.object_list)
    extra = _extra_columns(page.object_list)
    rows = [
        {
            "service": s,
            "scorecard": cards.get(s.pk),
            "last_run": extra.get("last_runs", {}).get(s.pk),
        }
        for s in page.object_list
    ]
    ctx = {
        "page": page,
        "rows": rows,
        "has_runs": "last_runs" in extra,
        "pager_target": "#results",
    }
    return get_template("squads/_service_results.html").render(ctx, request)


@login_required
def service_list(request):
    """The catalog. Result rows (and the filters' choices) are cached until a catalog input
    changes (squads/cache.py): a page of rows is rendered once per change, not per visit."""
    results = CATALOG.cached(
        ("html-results", request.path, request.GET.urlencode()),
        lambda: _service_results(request),
    )
    if request.htmx and not request.htmx.boosted:
        return HttpResponse(results)
    choices = CATALOG.cached(("filter-choices",), _filter_choices)
    get = request.GET.get
    ctx = {
        "results": mark_safe(results),  # noqa: S308 - rendered by our template (autoescaped)
        "sort": get("sort", ""),
        "lifecycles": Lifecycle.choices,
        "filter_fields": {
            "owner": _filter_field(
                "owner", choices["owner"], get("owner"), "All squads", html_id="f-owner"
            ),
            "tribe": _filter_field("tribe", choices["tribe"], get("tribe"), "All tribes"),
            "system": _filter_field("system", choices["system"], get("system"), "All systems"),
            "type": _filter_field("type", choices["type"], get("type"), "Any"),
            "tag": _filter_field("tag", choices["tag"], get("tag"), "Any"),
        },
    }
    return render(request, "squads/service_list.html", ctx)


service_list.nav_section = "catalog"


def _service_graph(service, deps, dependents):
    center = graph.Node(service.name, service.get_absolute_url(), "self")
    upstream = []
    for d in deps:
        if d.target_service_id:
            t = d.target_service
            upstream.append(
                graph.Node(
                    t.name,
                    t.get_absolute_url(),
                    "service",
                    t.owner.name if t.owner else "",
                    t.lifecycle == "deprecated",
                )
            )
        else:
            r = d.target_resource
            upstream.append(
                graph.Node(r.name, f"{service.get_absolute_url()}#resources", "resource", r.type)
            )
    downstream = [
        graph.Node(
            d.source.name,
            d.source.get_absolute_url(),
            "service",
            d.source.owner.name if d.source.owner else "",
            d.source.lifecycle == "deprecated",
        )
        for d in dependents
    ]
    return mark_safe(graph.render(center, upstream, downstream))  # noqa: S308 - every label is escaped


@login_required
def service_detail(request, slug):
    service = get_object_or_404(
        Service.objects.select_related(
            "owner", "owner__tribe", "system", "system__domain"
        ).prefetch_related(
            "tags",
            Prefetch("provides_apis", queryset=Api.objects.select_related("owner")),
            Prefetch("consumes_apis", queryset=Api.objects.select_related("owner")),
        ),
        slug=slug,
    )
    deps = list(
        Dependency.objects.filter(source=service)
        .select_related("target_service", "target_service__owner", "target_resource")
        .order_by("target_service__name", "target_resource__name")
    )
    dependents = list(
        Dependency.objects.filter(target_service=service)
        .select_related("source", "source__owner")
        .order_by("source__name")
    )
    actor = Actor.from_request(request)
    members = []
    if service.owner_id:
        members = list(
            Membership.objects.filter(squad_id=service.owner_id)
            .select_related("person")
            .order_by("role", "person__name")
        )
    ctx = {
        "service": service,
        "deps": deps,
        "dependents": dependents,
        "graph_svg": _service_graph(service, deps, dependents),
        "scorecard": scorecards.evaluate_one(service),
        "members": members,
        "can_write": actor.can("catalog:write", service.owner),
        "panels": _panels("service"),
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


@login_required
def squad_list(request):
    tribes = (
        Tribe.objects.prefetch_related(
            Prefetch(
                "squads",
                queryset=Squad.objects.annotate(
                    n_services=Count("services", distinct=True),
                    n_members=Count("memberships", distinct=True),
                ),
            )
        )
        .filter(squads__isnull=False)
        .distinct()
    )
    loose = Squad.objects.filter(tribe__isnull=True).annotate(
        n_services=Count("services", distinct=True), n_members=Count("memberships", distinct=True)
    )
    return render(request, "squads/squad_list.html", {"tribes": tribes, "loose": loose})


squad_list.nav_section = "squads"


def _squad_context(request, squad):
    members = list(
        Membership.objects.filter(squad=squad)
        .select_related("person")
        .order_by("role", "person__name")
    )
    svc = list(
        Service.objects.filter(owner=squad)
        .select_related("system")
        .prefetch_related("tags")
        .order_by("name")
    )
    cards = scorecards.evaluate(svc)
    actor = Actor.from_request(request)
    return {
        "squad": squad,
        "members": members,
        "leads": [m for m in members if m.role == Membership.Role.LEAD],
        "rows": [{"service": s, "scorecard": cards[s.pk]} for s in svc],
        "rollup": scorecards.rollup(cards.values()),
        "can_write": actor.can("catalog:write", squad),
        "panels": _panels("squad"),
    }


@login_required
def squad_detail(request, slug):
    squad = get_object_or_404(Squad.objects.select_related("tribe"), slug=slug)
    return render(request, "squads/squad_detail.html", _squad_context(request, squad))


squad_detail.nav_section = "squads"


@login_required
def my_squads(request):
    person = Person.objects.filter(user=request.user).first()
    squads = []
    if person:
        squads = [
            {**_squad_context(request, m.squad), "role": m.get_role_display()}
            for m in Membership.objects.filter(person=person).select_related(
                "squad", "squad__tribe"
            )
        ]
    return render(request, "squads/my_squads.html", {"person": person, "my": squads})


my_squads.nav_section = "squads"


@login_required
def tribe_detail(request, slug):
    tribe = get_object_or_404(Tribe.objects.select_related("parent"), slug=slug)
    squads = tribe.squads.annotate(
        n_services=Count("services", distinct=True), n_members=Count("memberships", distinct=True)
    )
    return render(
        request,
        "squads/tribe_detail.html",
        {"tribe": tribe, "squads": squads, "children": tribe.children.all()},
    )


tribe_detail.nav_section = "squads"


@login_required
def system_detail(request, slug):
    system = get_object_or_404(System.objects.select_related("owner", "domain"), slug=slug)
    svc = system.services.select_related("owner").order_by("name")
    return render(
        request,
        "squads/system_detail.html",
        {
            "system": system,
            "services": svc,
            "apis": system.apis.select_related("owner"),
            "resources": system.resources.all(),
        },
    )


system_detail.nav_section = "catalog"


@login_required
def api_detail(request, slug):
    api = get_object_or_404(Api.objects.select_related("owner", "system"), slug=slug)
    return render(
        request,
        "squads/api_detail.html",
        {
            "api": api,
            "providers": api.providers.select_related("owner"),
            "consumers": api.consumers.select_related("owner"),
        },
    )


api_detail.nav_section = "catalog"


@body_limit(MAX_SOURCE_BYTES)  # uploaded files up to the import's own 10 MB
@login_required
def catalog_import(request):
    """Upload Backstage descriptor files; all-or-nothing, with every error listed."""
    report = errors = None
    if request.method == "POST":
        files = request.FILES.getlist("files")
        text = request.POST.get("yaml", "").strip()
        sources = [(f.name, f.read().decode("utf-8", errors="replace")) for f in files]
        if text:
            sources.append(("pasted.yaml", text))
        if not sources:
            messages.error(request, "Choose at least one YAML file or paste YAML.")
        else:
            try:
                report = backstage.import_catalog(
                    sources, Actor.from_request(request), dry_run=bool(request.POST.get("dry_run"))
                )
            except backstage.ImportFailed as exc:
                errors = exc.errors
            except PermissionDenied as exc:
                messages.error(request, str(exc))
    return render(
        request,
        "squads/catalog_import.html",
        {"report": report, "errors": errors},
        status=400 if errors else 200,
    )


catalog_import.nav_section = "catalog"


@login_required
def catalog_export(request):
    resp = HttpResponse(backstage.export_catalog(), content_type="application/yaml")
    resp["Content-Disposition"] = 'attachment; filename="catalog-info.yaml"'
    return resp
