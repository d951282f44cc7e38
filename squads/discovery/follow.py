"""``kind: Location`` descriptors found by discovery: their ``spec.target`` / ``spec.targets``
are read from the same repository, at the same branch, through the same GitHub contents API
client (with its ETags), and imported together with the file that named them.

Only relative paths inside the repository are followed (resolved against the folder of the
file that names them); a URL, an absolute path, a path that climbs out of the repository or
a wildcard is an error of that repository. At most ``GITHUB_DISCOVERY_MAX_FILES`` files and
``GITHUB_DISCOVERY_MAX_DEPTH`` locations deep; a target that leads back to a file on its own
chain is a cycle (an error naming the chain); a file two locations name is read once. Any
error and the repository imports nothing (all-or-nothing, as for one file).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field

import yaml
from django.conf import settings

from portal import github, safeparse
from squads.backstage.refs import DEFAULT_NAMESPACE, ref_string
from squads.backstage.report import ImportFailed, ImportIssue

SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*:")
WILDCARD = re.compile(r"[*?\[]")


@dataclass
class Descriptors:
    """The files read for one repository: ``files`` as (path, text), the root first;
    ``paths``: every path tried (a push touching one rescans); ``cached``: every file was
    answered from its ETag (nothing changed)."""

    files: list[tuple[str, str]]
    paths: list[str]
    cached: bool
    errors: list[ImportIssue] = field(default_factory=list)


def _documents(text: str) -> list:
    try:
        return list(safeparse.load_yaml_all(text))
    except (yaml.YAMLError, safeparse.TooComplex, ValueError):
        return []  # the importer names the line


def _label(doc: dict) -> str:
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    name, ns = meta.get("name"), meta.get("namespace") or DEFAULT_NAMESPACE
    return ref_string("location", ns, name) if isinstance(name, str) else "location"


def _targets(doc: dict) -> list[tuple[str, object]]:
    spec = doc.get("spec") if isinstance(doc.get("spec"), dict) else {}
    found: list[tuple[str, object]] = []
    if spec.get("target") is not None:
        found.append(("spec.target", spec["target"]))
    many = spec.get("targets")
    if isinstance(many, list):
        found += [(f"spec.targets[{i}]", t) for i, t in enumerate(many)]
    return found


def resolve(full_name: str, base: str, target: object) -> tuple[str | None, str]:
    """(the repository path ``target`` names from the file ``base``, or None and why not)."""
    if not isinstance(target, str) or not target.strip():
        return None, "must be a path inside the repository"
    where = f"the repository {full_name}"
    if SCHEME.match(target) or target.startswith("//"):
        return None, f"location target '{target}' is a URL: only paths inside {where} are followed"
    if target.startswith("/"):
        return None, f"location target '{target}' is absolute: give a path relative to this file"
    if WILDCARD.search(target):
        return None, f"location target '{target}' has a wildcard: name each file"
    path = posixpath.normpath(posixpath.join(posixpath.dirname(base), target.strip()))
    if path == "." or path.startswith("../") or path == "..":
        return None, f"location target '{target}' is outside {where}; only its files are read"
    return path, ""


class _Reader:
    def __init__(self, client, full_name: str, ref: str):
        self.client, self.full_name, self.ref = client, full_name, ref
        self.max_files = settings.GITHUB_DISCOVERY_MAX_FILES
        self.max_depth = settings.GITHUB_DISCOVERY_MAX_DEPTH

    def read(self, path: str, text: str, cached: bool) -> Descriptors:
        self.out = Descriptors([(path, text)], [path], cached)
        self.seen = {path}
        self._visit(path, text, [path])
        return self.out

    def _error(self, path, index, label, field_, message):
        issue = ImportIssue(f"{self.full_name}/{path}", index, label, field_, message)
        self.out.errors.append(issue)

    def _visit(self, path: str, text: str, chain: list[str]) -> None:
        for index, doc in enumerate(_documents(text), start=1):
            if not isinstance(doc, dict) or str(doc.get("kind", "")).lower() != "location":
                continue
            optional = (doc.get("spec") or {}).get("presence") == "optional"
            for field_, target in _targets(doc):
                where = (path, index, _label(doc), field_)
                resolved, why = resolve(self.full_name, path, target)
                if resolved is None:
                    self._error(*where, why)
                elif resolved in chain:
                    loop = " → ".join([*chain[chain.index(resolved) :], resolved])
                    self._error(*where, f"location target '{target}' makes a cycle: {loop}")
                elif resolved not in self.seen:
                    self._follow(where, target, resolved, chain, optional)

    def _follow(self, where, target, resolved: str, chain: list[str], optional: bool) -> None:
        if len(chain) > self.max_depth:
            return self._error(*where, f"location target '{target}': more than "
                               f"{self.max_depth} locations deep")  # fmt: skip
        if len(self.out.files) >= self.max_files:
            return self._error(*where, f"location target '{target}': more than "
                               f"{self.max_files} files in one repository")  # fmt: skip
        self.seen.add(resolved)
        self.out.paths.append(resolved)
        try:
            text, answer = self.client.file_text(self.full_name, resolved, ref=self.ref)
        except github.RateLimited:
            raise
        except github.GitHubError as exc:
            return self._error(*where, f"location target '{target}': GitHub: {exc}")
        if text is None:
            if not optional:
                self._error(*where, f"location target '{target}': {resolved} is not in "
                            f"the repository {self.full_name}")  # fmt: skip
            return None
        self.out.files.append((resolved, text))
        self.out.cached = self.out.cached and answer.cached
        self._visit(resolved, text, [*chain, resolved])
        return None


def read_descriptors(client, full_name: str, ref: str, path: str, text: str, cached: bool):
    """Every file the descriptor at ``path`` leads to; ImportFailed (``.errors``, and
    ``.descriptors``: what was read) when a target cannot be followed."""
    found = _Reader(client, full_name, ref).read(path, text, cached)
    if found.errors:
        failed = ImportFailed(found.errors)
        failed.descriptors = found  # type: ignore[attr-defined]
        raise failed
    return found
