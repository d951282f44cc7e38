"""A catalog row (in ``shape`` form) as the Backstage descriptor Backline writes for it, and the
overlay that turns a stored original descriptor into the export: the original, with only what
changed in Backline since the import (``seen`` → ``now``) written over it."""

import copy

from portal.urlsecrets import redact_credentials

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
# Backstage requires a non-empty definition; an API made in Backline may have none. The importer
# reads this text back as "no definition".
NO_DEFINITION = "(no definition recorded in Backline)"
KIND_OF = {
    "tribe": "Group",
    "squad": "Group",
    "person": "User",
    "domain": "Domain",
    "system": "System",
    "api": "API",
    "resource": "Resource",
    "component": "Component",
}


def ref(kind: str, slug: str, from_ns: str, default_kind: str) -> str:
    ns, name = split_slug(slug)
    text = name if ns == from_ns else f"{ns}/{name}"
    return text if kind == default_kind else f"{kind}:{text}"


def _metadata(slug, *, name=None, description="", tags=None, links=None, annotations=None):
    ns, base = split_slug(slug)
    meta = {"name": base}
    if ns != DEFAULT_NAMESPACE:
        meta["namespace"] = ns
    if name and name != slug:
        meta["title"] = name
    if description:
        meta["description"] = description
    if tags:
        meta["tags"] = list(tags)
    if links:
        meta["links"] = list(links)
    if annotations:
        meta["annotations"] = dict(sorted(annotations.items()))
    return ns, meta


def _profile(name, email, picture, default_name):
    profile = {}
    if name and name != default_name:
        profile["displayName"] = name
    if email:
        profile["email"] = email
    if picture:
        profile["picture"] = picture
    return profile


def _group(slug, w, children, parent):
    gtype = "team" if "mission" in w else (w["kind"] if w["kind"] != "team" else "tribe")
    ann = {}
    if w.get("chat_channel"):
        ann[ANN_CHAT] = w["chat_channel"]
    if w.get("oncall_contact"):
        ann[ANN_ONCALL] = w["oncall_contact"]
    description = w.get("mission", w.get("description"))
    ns, meta = _metadata(slug, description=description, links=w["links"], annotations=ann)
    spec = {"type": gtype}
    profile = _profile(w["name"], w["email"], w["picture"], slug)
    if profile:
        spec["profile"] = profile
    if parent:
        spec["parent"] = ref("group", parent, ns, "group")
    spec["children"] = [ref("group", c, ns, "group") for c in sorted(children.get(slug, ()))]
    return meta, spec


def _person(slug, w):
    mine = sorted(w["memberships"])
    ann = {}
    for key, role in ((ANN_LEAD_OF, "lead"), (ANN_PO_OF, "product_owner")):
        teams = [s for s, r in mine if r == role]
        if teams:
            ann[key] = ", ".join(teams)
    ns, meta = _metadata(slug, annotations=ann)
    spec = {}
    profile = _profile(w["name"], w["email"], w["picture"], split_slug(slug)[1])
    if profile:
        spec["profile"] = profile
    spec["memberOf"] = [ref("group", s, ns, "group") for s, _ in mine]
    return meta, spec


def _owned(kind, slug, w):
    tags = sorted(w["tags"]) if kind == "component" else w["tags"]
    ann = _service_annotations(w) if kind == "component" else None
    ns, meta = _metadata(
        slug,
        name=w["name"],
        description=w["description"],
        tags=tags,
        links=w["links"],
        annotations=ann,
    )
    spec = {}
    if "type" in w:
        spec["type"] = w["type"]
    if "lifecycle" in w:
        spec["lifecycle"] = w["lifecycle"]
    owner = w["owner"] or w.get("owner_tribe")
    if owner:
        spec["owner"] = ref("group", owner, ns, "group")
    for key in ("domain", "system"):
        if w.get(key):
            spec[key] = ref(key, w[key], ns, key)
    if kind == "api":
        spec["definition"] = w["definition"] or NO_DEFINITION
    if kind == "component":
        for key, fld in (("provides", "providesApis"), ("consumes", "consumesApis")):
            if w[key]:
                spec[fld] = [ref("api", a, ns, "api") for a in sorted(w[key])]
        if w["deps"]:
            spec["dependsOn"] = [ref(k, t, ns, "") for k, t in sorted(w["deps"])]
    return meta, spec


def _service_annotations(w):
    ann = dict(w["annotations"] or {})
    ann[ANN_TIER] = str(w["tier"])
    repo = redact_credentials(w["repository_url"])  # never a credential in an export
    if repo:
        gh = repo.removeprefix("https://github.com/")
        if gh != repo and gh.count("/") == 1 and ANN_GITHUB not in ann:
            ann[ANN_GITHUB] = gh
        else:
            ann[ANN_REPO] = repo
    if w["default_branch"] and w["default_branch"] != "main":
        ann[ANN_BRANCH] = w["default_branch"]
    if w["runbook_url"]:
        ann[ANN_RUNBOOK] = w["runbook_url"]
    if w["oncall"]:
        ann[ANN_ONCALL] = w["oncall"]
    return ann


def render(kind, slug, w, children) -> dict:
    """The descriptor for one row; ``children``: group slug → child group slugs."""
    if kind in ("tribe", "squad"):
        parent = w["parent"] or (w["tribe"] if kind == "squad" else None)
        meta, spec = _group(slug, w, children, parent)
    elif kind == "person":
        meta, spec = _person(slug, w)
    else:
        meta, spec = _owned(kind, slug, w)
    return {"apiVersion": API_VERSION, "kind": KIND_OF[kind], "metadata": meta, "spec": spec}


def _overlay(target, seen, now):
    for key in list(seen) + [k for k in now if k not in seen]:
        if key not in now:
            if key in seen and isinstance(target, dict):
                target.pop(key, None)
            continue
        old, new = seen.get(key), now[key]
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            if key not in target:
                target[key] = {}
            if isinstance(target[key], dict):  # only the keys that changed
                _overlay(target[key], old, new)
                continue
        target[key] = copy.deepcopy(new)


def overlay(original, seen, now):
    """``original`` with every difference between ``seen`` (Backline's rendering right after
    the import) and ``now`` (its rendering today) applied; mappings are compared key by key,
    anything else is replaced whole."""
    out = copy.deepcopy(original)
    _overlay(out, seen, now)
    return out
