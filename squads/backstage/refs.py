"""Backstage entity references: ``[kind:][namespace/]name``.

Backline has one namespace of slugs per kind. An entity in the ``default`` namespace keeps its
``metadata.name`` as slug; an entity in another namespace ``ns`` gets the slug ``ns--name``
(Backstage names never contain ``--``, so the mapping is reversible).
"""

import re

DEFAULT_NAMESPACE = "default"
NAME_RE = re.compile(r"^([A-Za-z0-9]+[-_.])*[A-Za-z0-9]+$")
NAMESPACE_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
NS_SEP = "--"

# Backstage kind name → lower-case kind used in refs.
KIND_NAMES = {
    "group": "Group",
    "user": "User",
    "component": "Component",
    "system": "System",
    "domain": "Domain",
    "api": "API",
    "resource": "Resource",
    "location": "Location",
}


class RefError(ValueError):
    pass


def slug_for(namespace: str, name: str) -> str:
    if not namespace or namespace == DEFAULT_NAMESPACE:
        return name
    return f"{namespace}{NS_SEP}{name}"


def split_slug(slug: str) -> tuple[str, str]:
    """slug → (namespace, name)."""
    if NS_SEP in slug:
        ns, name = slug.split(NS_SEP, 1)
        return ns, name
    return DEFAULT_NAMESPACE, slug


def parse_ref(value, default_kind: str, default_namespace: str = DEFAULT_NAMESPACE):
    """Return (kind, namespace, name). A ref without a namespace inherits the namespace of the
    entity that names it (Backstage semantics)."""
    if not isinstance(value, str) or not value.strip():
        raise RefError("must be an entity reference such as 'group:default/team-a'")
    text = value.strip()
    kind = default_kind
    if ":" in text:
        kind, text = text.split(":", 1)
        kind = kind.strip().lower()
    namespace = default_namespace
    if "/" in text:
        namespace, text = text.split("/", 1)
    name = text.strip()
    if not NAME_RE.match(name) or len(name) > 63:
        raise RefError(f"'{value}' is not a valid entity reference")
    if not NAMESPACE_RE.match(namespace):
        raise RefError(f"'{value}' has an invalid namespace '{namespace}'")
    return kind, namespace, name


def ref_string(kind: str, namespace: str, name: str) -> str:
    return f"{kind}:{namespace or DEFAULT_NAMESPACE}/{name}"
