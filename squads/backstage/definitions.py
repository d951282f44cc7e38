"""API definitions given as placeholders (``$text``, ``$json``, ``$yaml``, ``$openapi``,
``$asyncapi``): read at import, relative to the descriptor and inside the folder that was
imported (a URL only under the base URL of a catalog that was itself fetched, through the
outbound URL guard); the descriptor keeps the placeholder, so the export writes it back."""

from . import sources as src


def resolve_placeholder(ctx, e, value, keep):
    """The text a placeholder names; ``keep`` (the stored definition) when it cannot be read
    without reaching beyond what the import may read."""
    key, target = next(iter(value.items()))
    path = f"spec.definition.{key}"
    if not isinstance(target, str) or not target.strip():
        ctx.error(e.doc, e, path, "must be a path or URL")
        return ""
    if e.doc.origin is None:
        ctx.warn(
            e.doc,
            e,
            f"{path}: '{target}' not read: uploaded text has no base path or URL"
            + ("; the stored definition is kept" if keep else ""),
        )
        return keep
    try:
        resolved = src.resolve(e.doc.origin, target)
    except src.SourceError as exc:
        ctx.error(e.doc, e, path, f"definition '{target}' {exc}")
        return ""
    if not src.within(e.doc.root, resolved):
        if src.is_url(resolved):  # e.g. a public spec named by a local file: not fetched
            ctx.warn(
                e.doc,
                e,
                f"{path}: '{target}' is not read: it is not under this catalog's base "
                f"({e.doc.root}); "
                + ("the stored definition is kept" if keep else "the definition is left empty"),
            )
            return keep
        ctx.error(
            e.doc,
            e,
            path,
            f"definition '{target}' is outside the imported folder ({e.doc.root})",
        )
        return ""
    try:
        return src.read(resolved)  # URLs: the same fetching as Location targets
    except src.SourceError as exc:
        if src.is_url(resolved):  # a remote host being down does not block the catalog
            ctx.warn(
                e.doc,
                e,
                f"{path}: {exc}; "
                + ("the stored definition is kept" if keep else "the definition is left empty"),
            )
            return keep
        ctx.error(e.doc, e, path, f"definition '{target}' {exc}")
        return ""
