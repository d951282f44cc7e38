"""Reading documents: multi-document YAML, Location targets followed with cycle protection."""

from dataclasses import dataclass

import yaml

from portal import safeparse

from . import sources as src
from .refs import DEFAULT_NAMESPACE, ref_string
from .report import ImportIssue
from .yamlfast import FastLoader

YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available


# --- reading ------------------------------------------------------------------------------------
@dataclass
class Doc:
    file: str
    index: int
    data: dict
    origin: str | None  # absolute path or URL of the file, None for uploads
    root: str | None = None  # the folder (or URL prefix) ``$text`` placeholders must stay in


@dataclass
class Entity:
    kind: str  # lower-case Backstage kind
    namespace: str
    name: str
    slug: str
    doc: Doc
    spec: dict
    metadata: dict

    @property
    def ref(self):
        return ref_string(self.kind, self.namespace, self.name)


class _Ctx:
    """Collects errors and warnings while reading and validating."""

    def __init__(self, report):
        self.report = report
        self.errors = report.errors
        self.warnings = report.warnings

    def error(self, doc, entity, field_, message):
        self.errors.append(
            ImportIssue(
                file=doc.file if doc else "",
                document=doc.index if doc else None,
                entity=entity.ref if isinstance(entity, Entity) else (entity or ""),
                field=field_,
                message=message,
            )
        )

    def warn(self, doc, entity, message):
        where = f"{doc.file}: document {doc.index}" if doc else ""
        ref = entity.ref if isinstance(entity, Entity) else (entity or "")
        self.warnings.append(f"{where}{f' ({ref})' if ref else ''}: {message}")


def _read_documents(sources, ctx: _Ctx) -> list[Doc]:
    docs: list[Doc] = []
    visited = set()
    queue = []
    given = set()
    for item in sources:
        name, text = item[0], item[1]
        origin = getattr(item, "origin", None)
        key = origin or (name, text)
        if key in given:  # the same file given twice is read once
            continue
        given.add(key)
        if origin:
            visited.add(origin)
        root = getattr(item, "root", None) or src.folder_of(origin)
        queue.append((name, text, origin, root, getattr(item, "followed", False)))
        ctx.report.sources.append(name)
    while queue:
        name, text, origin, root, followed = queue.pop(0)
        ctx.report.files_read += 1
        index = 0
        try:
            documents = safeparse.load_yaml_all(text, loader=FastLoader)
            for index, data in enumerate(documents, start=1):  # noqa: B007
                if data is None:
                    continue
                doc = Doc(name, index, data, origin, root)
                docs.append(doc)
                if followed or not isinstance(data, dict):
                    continue
                if str(data.get("kind", "")).lower() == "location":
                    queue.extend((*t, False) for t in _follow_location(doc, ctx, visited))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            ctx.error(Doc(name, index + 1, {}, origin), "", "", f"invalid YAML{where}: {problem}")
    ctx.report.documents = len(docs)
    return docs


def _location_entity_label(doc):
    meta = doc.data.get("metadata") or {}
    name = meta.get("name") if isinstance(meta, dict) else None
    ns = (meta.get("namespace") if isinstance(meta, dict) else None) or DEFAULT_NAMESPACE
    return ref_string("location", ns, name) if name else "location"


def _follow_location(doc, ctx, visited):
    spec = doc.data.get("spec") or {}
    label = _location_entity_label(doc)
    if not isinstance(spec, dict):
        ctx.error(doc, label, "spec", "must be a mapping")
        return []
    targets = []
    if spec.get("target") is not None:
        targets.append(("spec.target", spec.get("target")))
    raw_targets = spec.get("targets") or []
    if not isinstance(raw_targets, list):
        ctx.error(doc, label, "spec.targets", "must be a list of paths or URLs")
        raw_targets = []
    targets += [(f"spec.targets[{i}]", t) for i, t in enumerate(raw_targets)]
    out = []
    for path, target in targets:
        if not isinstance(target, str) or not target.strip():
            ctx.error(doc, label, path, "must be a path or URL")
            continue
        if doc.origin is None:
            ctx.warn(
                doc,
                label,
                f"{path}: target '{target}' not followed: uploaded text has no base path or "
                "URL (use `import_backstage` or register the location instead)",
            )
            continue
        try:
            resolved = src.resolve(doc.origin, target)
        except src.SourceError as exc:
            ctx.error(doc, label, path, f"location target '{target}' {exc}")
            continue
        if not src.within(doc.root, resolved):
            ctx.error(
                doc,
                label,
                path,
                f"location target '{target}' is outside the imported folder ({doc.root}); "
                "only files under it are read",
            )
            continue
        if resolved in visited:
            ctx.warn(doc, label, f"{path}: target '{target}' was already read; skipped")
            continue
        visited.add(resolved)
        try:
            text = src.read(resolved)
        except src.SourceError as exc:
            if spec.get("presence") == "optional" and src.is_missing(exc):
                ctx.warn(doc, label, f"{path}: optional target '{target}' {exc}; skipped")
                continue
            ctx.error(doc, label, path, f"location target '{target}' {exc}")
            continue
        ctx.report.locations_followed += 1
        name = src.display_name(doc.file, doc.origin, target, resolved)
        out.append((name, text, resolved, doc.root))
    return out
