"""Field validators: each records an error naming file, document, entity and field."""

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from .constants import TAG_RE


# --- validation helpers -------------------------------------------------------------------------
def _text(ctx, e, obj, key, path, *, max_len=None, clip=None, default=""):
    """A string field; ``max_len`` refuses longer values, ``clip`` shortens them (Backstage sets
    no limit on titles and display names: the descriptor keeps the whole text)."""
    value = obj.get(key) if isinstance(obj, dict) else None
    if value is None:
        return default
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        ctx.error(e.doc, e, path, "must be a string")
        return default
    value = value.strip()
    if clip:
        return value[:clip]
    if max_len and len(value) > max_len:
        ctx.error(e.doc, e, path, f"is {len(value)} characters long; at most {max_len} allowed")
        return value[:max_len]
    return value


def link_url_ok(url: str) -> bool:
    """Only web and mail links end up as hrefs on pages (no javascript:, data:, ...)."""
    scheme = url.split(":", 1)[0].strip().lower() if ":" in url else ""
    return scheme in ("http", "https", "mailto")


def _metadata_list(ctx, e, key: str) -> list:
    """``metadata.<key>``: absent is empty, anything but a list is an error (and empty)."""
    items = e.metadata.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        ctx.error(e.doc, e, f"metadata.{key}", "must be a list")
        return []
    return items


def _links(ctx, e):
    out = []
    for i, link in enumerate(_metadata_list(ctx, e, "links")):
        if not isinstance(link, dict) or not isinstance(link.get("url"), str) or not link["url"]:
            ctx.error(e.doc, e, f"metadata.links[{i}]", "must be a mapping with a 'url'")
            continue
        if not link_url_ok(link["url"]):
            ctx.error(e.doc, e, f"metadata.links[{i}].url", "must be an http(s) or mailto URL")
            continue
        out.append(
            {
                k: str(v)
                for k, v in link.items()
                if k in ("url", "title", "icon", "type") and v is not None
            }
        )
    return out


def _tags(ctx, e):
    out: list[str] = []
    for i, tag in enumerate(_metadata_list(ctx, e, "tags")):
        if not isinstance(tag, str) or not TAG_RE.match(tag) or len(tag) > 63:
            ctx.error(
                e.doc,
                e,
                f"metadata.tags[{i}]",
                f"'{tag}' is not a valid tag (lower-case letters, digits, ':+#', single dashes; at most 63)",
            )
            continue
        if tag not in out:
            out.append(tag)
    return out


def _annotations(ctx, e):
    ann = e.metadata.get("annotations")
    if ann is None:
        return {}
    if not isinstance(ann, dict):
        ctx.error(e.doc, e, "metadata.annotations", "must be a mapping")
        return {}
    return {str(k): "" if v is None else str(v) for k, v in ann.items()}


def _ref_list(ctx, e, path):
    value = e.spec.get(path.split(".")[-1])
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        ctx.error(e.doc, e, path, "must be a list of entity references")
        return []
    return value


def _email(ctx, e, value, path):
    if not value:
        return ""
    try:
        validate_email(value)
    except ValidationError:
        ctx.error(e.doc, e, path, f"'{value}' is not a valid email address")
        return ""
    if len(value) > 254:
        ctx.error(e.doc, e, path, "is longer than 254 characters")
    return value


def _url(ctx, e, value, path, max_len=500):
    if value and len(value) > max_len:
        ctx.error(e.doc, e, path, f"is {len(value)} characters long; at most {max_len} allowed")
    return value
