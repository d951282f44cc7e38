"""Backstage entity references: ``[kind:][namespace/]name``.

Backline has one namespace of slugs per kind. An entity in the ``default`` namespace has its
``metadata.name`` as slug; an entity in another namespace ``ns`` gets the slug ``ns--name``.
Slugs are lower-case: Backstage compares kind, namespace and name case-insensitively, so
``Platform`` and ``platform`` are one entity (the descriptor's own spelling is kept in the stored
original and exported as written). Messages name entities by their ref, never by slug.
"""

import re

DEFAULT_NAMESPACE = "default"
# Backstage's KubernetesValidatorFunctions: isValidObjectName and isValidNamespace (DNS label),
# each 1 to 63 characters.
NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
NAMESPACE_RE = re.compile(r"^[a-z0-9]+(-+[a-z0-9]+)*$")
MAX_NAME = 63
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


def valid_name(value) -> bool:
    return isinstance(value, str) and len(value) <= MAX_NAME and bool(NAME_RE.match(value))


def valid_namespace(value) -> bool:
    return isinstance(value, str) and len(value) <= MAX_NAME and bool(NAMESPACE_RE.match(value))


def slug_for(namespace: str, name: str) -> str:
    name = name.lower()
    if not namespace or namespace.lower() == DEFAULT_NAMESPACE:
        return name
    return f"{namespace.lower()}{NS_SEP}{name}"


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
    namespace = namespace.strip().lower()
    if not valid_name(name):
        raise RefError(f"'{value}' is not a valid entity reference")
    if not valid_namespace(namespace):
        raise RefError(f"'{value}' has an invalid namespace '{namespace}'")
    return kind, namespace, name


def ref_string(kind: str, namespace: str, name: str) -> str:
    return f"{kind}:{namespace or DEFAULT_NAMESPACE}/{name}"


def ref_of_slug(kind: str, slug: str) -> str:
    """``component:default/foo`` for a slug (how messages name entities)."""
    return ref_string(kind, *split_slug(slug))
