from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Count, Exists, OuterRef, Prefetch, Q, Subquery
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import get_template
from django.utils.html import escape, format_html
from django.utils.safestring import mark_safe
from django.utils.text import Truncator

from portal.actors import Actor
from portal.errors import DomainError
from portal.limits import body_limit
from portal.registry import registry
from portal.urlsecrets import redact_credentials
from portal.web import add_form_errors
from squads import backstage, documents, graph, scorecards, services
from squads.backstage.sources import MAX_SOURCE_BYTES
from squads.cache import CATALOG
from squads.filters import ServiceViewFilter
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
from squads.stitch import HEAVY, restitch

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


# every filter's choices in one query (PostgreSQL): (kind, position, value, label) rows
CHOICES_SQL = """
WITH RECURSIVE t(type) AS (
    (SELECT type FROM squads_service ORDER BY type LIMIT 1)
    UNION ALL
    SELECT (SELECT s.type FROM squads_service s WHERE s.type > t.type ORDER BY s.type LIMIT 1)
    FROM t WHERE t.type IS NOT NULL
)
(SELECT 'owner', row_number() OVER (ORDER BY name), slug, name FROM squads_squad
  ORDER BY name LIMIT %(n)s)
UNION ALL (SELECT 'tribe', row_number() OVER (ORDER BY name), slug, name FROM squads_tribe tr
  WHERE EXISTS (SELECT 1 FROM squads_squad q WHERE q.tribe_id = tr.id) ORDER BY name LIMIT %(n)s)
UNION ALL (SELECT 'system', row_number() OVER (ORDER BY name), slug, name FROM squads_system
  ORDER BY name LIMIT %(n)s)
UNION ALL (SELECT 'type', row_number() OVER (ORDER BY type), type, type FROM t
  WHERE type IS NOT NULL ORDER BY type LIMIT %(n)s)
UNION ALL (SELECT 'tag', row_number() OVER (ORDER BY name), name, name FROM squads_tag tg
  WHERE EXISTS (SELECT 1 FROM squads_service_tags st WHERE st.tag_id = tg.id)
  ORDER BY name LIMIT %(n)s)
"""


def _filter_choices():
    """(value, label) pairs of every catalog filter, at most FILTER_SELECT_MAX + 1 each: one
    query on PostgreSQL (a recursive query hops along the ``type`` index for the types)."""
    limit = FILTER_SELECT_MAX + 1
    if connection.vendor != "postgresql":
        return _filter_choices_each(limit)
    found = {k: [] for k in ("owner", "tribe", "system", "type", "tag")}
    with connection.cursor() as cursor:
        cursor.execute(CHOICES_SQL, {"n": limit})
        for kind, _pos, value, label in sorted(cursor.fetchall(), key=lambda r: (r[0], r[1])):
            found[kind].append((value, label))
    return found


def _filter_choices_each(limit):
    return {
        "owner": list(Squad.objects.order_by("name").values_list("slug", "name")[:limit]),
        "tribe": list(
            Tribe.objects.filter(Exists(Squad.objects.filter(tribe=OuterRef("pk"))))
            .order_by("name")
            .values_list("slug", "name")[:limit]
        ),
        "system": list(System.objects.order_by("name").values_list("slug", "name")[:limit]),
        "type": list(
            Service.objects.order_by("type").values_list("type", "type").distinct()[:limit]
        ),
        "tag": list(
            Tag.objects.filter(Exists(Service.tags.through.objects.filter(tag_id=OuterRef("pk"))))
            .order_by("name")
            .values_list("name", "name")[:limit]
        ),
    }


def stored_scorecards(services) -> dict:
    """{service id: scorecard} as stitched at write time (squads/stitch.py): one query."""
    ids = [s.pk for s in services]
    return dict(ServiceView.objects.filter(pk__any=ids).values_list("service_id", "scorecard"))


SORTS = {
    "name": "name",
    "-name": "-name",
    "owner": "owner_slug",
    "-owner": "-owner_slug",
    "tier": "tier",
    "-tier": "-tier",
    "lifecycle": "lifecycle",
    "-lifecycle": "-lifecycle",
    "updated": "-updated_at",
}


def _name_of(model, column):
    """The name of the ``model`` row whose slug is the read form's ``column``: a subquery per
    row of a page (one probe of a unique index), so the page is still one query."""
    return Subquery(model.objects.filter(slug=OuterRef(column)).values("name")[:1])


def _owner_cell(row):
    slug = row["row"]["owner"]
    if not slug:
        return '<span class="badge badge-bad">no owner</span>'
    url = documents.url_of("squads:squad_detail", slug)
    tribe = row["tribe_name"]
    tribe = f'<div class="muted small">{escape(tribe)}</div>' if tribe else ""
    return f'<a href="{url}">{escape(row["owner_name"] or "")}</a>{tribe}'


def _system_cell(row):
    slug = row["row"]["system"]
    if not slug:
        return '<span class="muted">—</span>'
    url = documents.url_of("squads:system_detail", slug)
    return f'<a href="{url}">{escape(row["system_name"] or "")}</a>'


def _card_cell(card):
    if not card:
        return ""
    level = card.get("level") or "none"
    return (
        f'<span class="badge badge-{escape(level)}" title="{card["passed"]} of '
        f'{card["applicable"]} checks pass">{escape(level.title())}</span> '
        f'<span class="muted small">{card["percent"]}%</span>'
    )


def _run_cell(run):
    if run is None:
        return '<span class="muted small">no runs</span>'
    return f'<span class="badge badge-{escape(run.status)}">{escape(run.status)}</span>'


def _row_html(row, runs):
    """One catalog row, built in Python from the stitched row (a template loop over 25 rows
    resolved some 800 variables per page: the larger part of a page's cost)."""
    s = row["row"]
    run = f"<td>{_run_cell(runs.get(row['service_id']))}</td>" if runs is not None else ""
    tags = "".join(f'<span class="tag">{escape(t)}</span>' for t in s["tags"])
    description = escape(Truncator(s["description"] or "").chars(90))
    lifecycle = escape(s["lifecycle"])
    return (
        f'<tr>\n      <td><a class="svc-link" href="{escape(s["url"])}"><strong>'
        f'{escape(s["name"])}</strong></a><div class="muted small">{description}</div></td>\n'
        f'      <td class="nowrap">{_owner_cell(row)}</td>\n'
        f"      <td>{_system_cell(row)}</td>\n"
        f'      <td><span class="badge badge-{lifecycle}">{lifecycle}</span></td>\n'
        f'      <td class="nowrap">Tier {int(s["tier"])}</td>\n'
        f"      <td>{_card_cell(row['scorecard'])}</td>\n"
        f"      {run}\n      <td>{tags}</td>\n    </tr>\n"
    )


def _service_results(request):
    """The HTML of the catalog's result table and pager for this query string: a page of the
    stitched read form (its list row, stored scorecard and the owner's, tribe's and system's
    names: one indexed query, and its count) and the other apps' columns (one query each)."""
    flt = ServiceViewFilter(request.GET, queryset=ServiceView.objects.all())
    qs = flt.qs
    sort = request.GET.get("sort", "")
    if sort in SORTS:
        qs = qs.order_by(SORTS[sort], "name")
    elif not (request.GET.get("q") or request.GET.get("search")):
        qs = qs.order_by("name")
    rows = qs.values("service_id", "row", "scorecard").annotate(
        owner_name=_name_of(Squad, "owner_slug"),
        tribe_name=_name_of(Tribe, "tribe_slug"),
        system_name=_name_of(System, "system_slug"),
    )
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    found = list(page.object_list)
    extra = {c.key: c.load([r["service_id"] for r in found]) for c in registry.catalog_columns}
    runs = extra.get("last_runs")
    rows = "".join(_row_html(r, runs) for r in found)
    ctx = {
        "page": page,
        "rows_html": mark_safe(rows),  # noqa: S308 - every value escaped (_row_html)
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
            .only("role", "person__name")
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
