"""Export the whole catalog as multi-document Backstage YAML that re-imports to the same
catalog (see ``importer`` for the mapping; the round trip is covered by a test)."""

from collections import defaultdict

import yaml

from squads.models import (
    Api,
    Dependency,
    Domain,
    Membership,
    Person,
    Resource,
    Service,
    Squad,
    System,
    Tribe,
)

from .constants import (
    ANN_BRANCH,
    ANN_CHAT,
    ANN_GITHUB,
    ANN_LEAD_OF,
    ANN_ONCALL,
    ANN_PO_OF,
    ANN_REPO,
    ANN_RUNBOOK,
    ANN_TIER,
)
from .refs import DEFAULT_NAMESPACE, split_slug

API_VERSION = "backstage.io/v1alpha1"


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):
    pass


def _str_presenter(dumper, data):
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_presenter)


def _ref(kind: str, slug: str, from_ns: str, default_kind: str) -> str:
    ns, name = split_slug(slug)
    text = name if ns == from_ns else f"{ns}/{name}"
    return text if kind == default_kind else f"{kind}:{text}"


def _metadata(
    slug, *, name=None, title_key="title", description="", tags=None, links=None, annotations=None
):
    ns, base = split_slug(slug)
    meta = {"name": base}
    if ns != DEFAULT_NAMESPACE:
        meta["namespace"] = ns
    if title_key and name and name != slug:
        meta[title_key] = name
    if description:
        meta["description"] = description
    if tags:
        meta["tags"] = list(tags)
    if links:
        meta["links"] = list(links)
    if annotations:
        meta["annotations"] = dict(sorted(annotations.items()))
    return ns, meta


def _entity(kind, metadata, spec):
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": spec}


def catalog_entities() -> list[dict]:
    """Every catalog entity as a Backstage descriptor (dicts), in a stable order."""
    tribes = list(Tribe.objects.order_by("slug"))
    squads = list(Squad.objects.order_by("slug"))
    tribe_slug = {t.pk: t.slug for t in tribes}
    squad_slug = {s.pk: s.slug for s in squads}
    out = []

    children = defaultdict(list)  # group slug → child group slugs
    group_parent = {}
    for t in tribes:
        if t.parent_id:
            group_parent[t.slug] = ("group", tribe_slug[t.parent_id])
    for s in squads:
        p = squad_slug.get(s.parent_id) or tribe_slug.get(s.tribe_id)
        if p:
            group_parent[s.slug] = ("group", p)
    for child, (_, p) in group_parent.items():
        children[p].append(child)

    def group(slug, gtype, name, description, email, picture, links, annotations=None):
        ns, meta = _metadata(
            slug, title_key=None, description=description, links=links, annotations=annotations
        )
        profile = {}
        if name and name != slug:
            profile["displayName"] = name
        if email:
            profile["email"] = email
        if picture:
            profile["picture"] = picture
        spec = {"type": gtype}
        if profile:
            spec["profile"] = profile
        if slug in group_parent:
            spec["parent"] = _ref("group", group_parent[slug][1], ns, "group")
        spec["children"] = [_ref("group", c, ns, "group") for c in sorted(children[slug])]
        return _entity("Group", meta, spec)

    for t in tribes:
        out.append(
            group(
                t.slug,
                t.kind if t.kind and t.kind != "team" else "tribe",  # "team" would be a squad
                t.name,
                t.description,
                t.email,
                t.picture,
                t.links,
            )
        )
    for s in squads:
        ann = {}
        if s.chat_channel:
            ann[ANN_CHAT] = s.chat_channel
        if s.oncall_contact:
            ann[ANN_ONCALL] = s.oncall_contact
        out.append(group(s.slug, "team", s.name, s.mission, s.email, s.picture, s.links, ann))

    memberships = defaultdict(list)
    for person_id, squad_id, role in Membership.objects.order_by("squad__slug").values_list(
        "person_id", "squad_id", "role"
    ):
        memberships[person_id].append((squad_slug[squad_id], role))
    for p in Person.objects.order_by("slug"):
        mine = memberships.get(p.pk, [])
        ann = {}
        leads = [s for s, r in mine if r == Membership.Role.LEAD]
        pos = [s for s, r in mine if r == Membership.Role.PRODUCT_OWNER]
        if leads:
            ann[ANN_LEAD_OF] = ", ".join(leads)
        if pos:
            ann[ANN_PO_OF] = ", ".join(pos)
        ns, meta = _metadata(p.slug, title_key=None, annotations=ann)
        profile = {}
        if p.name and p.name != split_slug(p.slug)[1]:
            profile["displayName"] = p.name
        if p.email:
            profile["email"] = p.email
        if p.picture:
            profile["picture"] = p.picture
        spec = {}
        if profile:
            spec["profile"] = profile
        spec["memberOf"] = [_ref("group", s, ns, "group") for s, _ in mine]
        out.append(_entity("User", meta, spec))

    def owner_ref(ns, owner_id, owner_tribe_id=None):
        if owner_id:
            return _ref("group", squad_slug[owner_id], ns, "group")
        if owner_tribe_id:
            return _ref("group", tribe_slug[owner_tribe_id], ns, "group")
        return None

    domains = list(Domain.objects.order_by("slug"))
    domain_slug = {d.pk: d.slug for d in domains}
    for d in domains:
        ns, meta = _metadata(
            d.slug, name=d.name, description=d.description, tags=d.tags, links=d.links
        )
        spec = {}
        owner = owner_ref(ns, d.owner_id, d.owner_tribe_id)
        if owner:
            spec["owner"] = owner
        out.append(_entity("Domain", meta, spec))

    systems = list(System.objects.order_by("slug"))
    system_slug = {s.pk: s.slug for s in systems}
    for s in systems:
        ns, meta = _metadata(
            s.slug, name=s.name, description=s.description, tags=s.tags, links=s.links
        )
        spec = {}
        owner = owner_ref(ns, s.owner_id, s.owner_tribe_id)
        if owner:
            spec["owner"] = owner
        if s.domain_id:
            spec["domain"] = _ref("domain", domain_slug[s.domain_id], ns, "domain")
        out.append(_entity("System", meta, spec))

    apis = list(Api.objects.order_by("slug"))
    api_slug = {a.pk: a.slug for a in apis}
    for a in apis:
        ns, meta = _metadata(
            a.slug, name=a.name, description=a.description, tags=a.tags, links=a.links
        )
        spec = {"type": a.type, "lifecycle": a.lifecycle}
        owner = owner_ref(ns, a.owner_id)
        if owner:
            spec["owner"] = owner
        if a.system_id:
            spec["system"] = _ref("system", system_slug[a.system_id], ns, "system")
        spec["definition"] = a.definition
        out.append(_entity("API", meta, spec))

    resources = list(Resource.objects.order_by("slug"))
    resource_slug = {r.pk: r.slug for r in resources}
    for r in resources:
        ns, meta = _metadata(
            r.slug, name=r.name, description=r.description, tags=r.tags, links=r.links
        )
        spec = {"type": r.type}
        owner = owner_ref(ns, r.owner_id)
        if owner:
            spec["owner"] = owner
        if r.system_id:
            spec["system"] = _ref("system", system_slug[r.system_id], ns, "system")
        out.append(_entity("Resource", meta, spec))

    services = list(Service.objects.order_by("slug"))
    service_slug = {s.pk: s.slug for s in services}
    tags = defaultdict(list)
    for sid, name in Service.tags.through.objects.order_by("tag__name").values_list(
        "service_id", "tag__name"
    ):
        tags[sid].append(name)
    provides, consumes = defaultdict(list), defaultdict(list)
    for rel, target in (
        (Service.provides_apis.through, provides),
        (Service.consumes_apis.through, consumes),
    ):
        for sid, aid in rel.objects.values_list("service_id", "api_id"):
            target[sid].append(api_slug[aid])
    deps = defaultdict(list)
    for sid, ts, tr in Dependency.objects.values_list(
        "source_id", "target_service_id", "target_resource_id"
    ):
        deps[sid].append(("component", service_slug[ts]) if ts else ("resource", resource_slug[tr]))
    for s in services:
        ann = dict(s.annotations or {})
        ann[ANN_TIER] = str(s.tier)
        if s.repository_url:
            gh = s.repository_url.removeprefix("https://github.com/")
            if gh != s.repository_url and gh.count("/") == 1 and ANN_GITHUB not in ann:
                ann[ANN_GITHUB] = gh
            else:
                ann[ANN_REPO] = s.repository_url
        if s.default_branch and s.default_branch != "main":
            ann[ANN_BRANCH] = s.default_branch
        if s.runbook_url:
            ann[ANN_RUNBOOK] = s.runbook_url
        if s.oncall:
            ann[ANN_ONCALL] = s.oncall
        ns, meta = _metadata(
            s.slug,
            name=s.name,
            description=s.description,
            tags=tags.get(s.pk),
            links=s.links,
            annotations=ann,
        )
        spec = {"type": s.type, "lifecycle": s.lifecycle}
        owner = owner_ref(ns, s.owner_id)
        if owner:
            spec["owner"] = owner
        if s.system_id:
            spec["system"] = _ref("system", system_slug[s.system_id], ns, "system")
        if provides.get(s.pk):
            spec["providesApis"] = [_ref("api", a, ns, "api") for a in sorted(provides[s.pk])]
        if consumes.get(s.pk):
            spec["consumesApis"] = [_ref("api", a, ns, "api") for a in sorted(consumes[s.pk])]
        if deps.get(s.pk):
            spec["dependsOn"] = [_ref(k, t, ns, "") for k, t in sorted(deps[s.pk])]
        out.append(_entity("Component", meta, spec))
    return out


def export_catalog() -> str:
    """The whole catalog as multi-document Backstage YAML."""
    return yaml.dump_all(
        catalog_entities(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100
    )
