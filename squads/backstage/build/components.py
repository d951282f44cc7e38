"""Components → services: tier, repository, runbook and on-call from annotations; dependencies
and APIs as sets of references."""

from portal.errors import Invalid
from portal.gitsource import validate_remote
from portal.urlsecrets import redact_embedded_credentials

from ..constants import (
    ANN_BRANCH,
    ANN_GITHUB,
    ANN_ONCALL,
    ANN_REPO,
    ANN_RUNBOOK,
    ANN_TIER,
    SERVICE_MAPPED_ANNOTATIONS,
)
from ..validate import _annotations, _links, _ref_list, _tags, _text, link_url_ok

FIELD = "repository_url"


class ComponentBuilder:
    """Mixin of ``EntityBuilder``."""

    def _build_component(self, e):
        ctx = self.ctx
        squad, _ = self._owner(e, allow_tribe=False)
        ann = _annotations(ctx, e)
        tier = self._tier(e, ann)
        repo, runbook = self._repo_and_runbook(e, ann)
        deps = self._dependencies(e)
        apis = {fld: self._api_refs(e, fld) for fld in ("providesApis", "consumesApis")}
        lifecycle, lifecycle_raw = self._lifecycle(e)
        if e.spec.get("subcomponentOf") is not None:  # kept in the descriptor
            self._ref(
                e, "spec.subcomponentOf", e.spec["subcomponentOf"], "component", ("component",)
            )
        return {
            **self._common(e),
            "owner": squad,
            "system": self._system_ref(e),
            "type": _text(ctx, e, e.spec, "type", "spec.type", max_len=50) or "service",
            "lifecycle": lifecycle,
            "lifecycle_raw": lifecycle_raw,
            "tier": tier,
            "repository_url": repo,
            "default_branch": ann.get(ANN_BRANCH, "") or "main",
            "runbook_url": runbook,
            "oncall": ann.get(ANN_ONCALL, ""),
            "links": _links(ctx, e),
            "annotations": _stored_annotations(ann),
            "tags": frozenset(_tags(ctx, e)),
            "provides": frozenset(apis["providesApis"]),
            "consumes": frozenset(apis["consumesApis"]),
            "deps": frozenset(deps),
        }

    def _tier(self, e, ann):
        """``backline.io/tier``: 1, 2 or 3 (``tier-2`` and ``Tier 2`` too); 3 when absent."""
        if ANN_TIER not in ann:
            return 3
        try:
            tier = int(str(ann[ANN_TIER]).strip().lower().removeprefix("tier").strip(" -_"))
            if tier not in (1, 2, 3):
                raise ValueError
        except ValueError:
            self.ctx.error(
                e.doc,
                e,
                f"metadata.annotations[{ANN_TIER}]",
                f"'{ann[ANN_TIER]}' is not a tier 1, 2 or 3",
            )
            tier = 3
        return tier

    def _repo_and_runbook(self, e, ann):
        """The repository URL (``backline.io/repository``, else the GitHub project slug) and
        the runbook URL; every mapped annotation checked against its column's length."""
        ctx = self.ctx
        repo = ann.get(ANN_REPO, "")
        if not repo and ann.get(ANN_GITHUB):
            repo = f"https://github.com/{ann[ANN_GITHUB].strip('/')}"
        if repo:
            try:  # the outbound URL guard (no DNS here: a host name is checked at the clone)
                validate_remote(repo, lookup=False)
            except Invalid as exc:
                ctx.error(e.doc, e, f"metadata.annotations[{ANN_REPO}]", exc.errors[FIELD][0])
                repo = ""
        runbook = ann.get(ANN_RUNBOOK, "")
        if runbook and not link_url_ok(runbook):
            ctx.error(e.doc, e, f"metadata.annotations[{ANN_RUNBOOK}]", "must be an http(s) URL")
            runbook = ""
        for key, value, limit in (
            (ANN_REPO, repo, 500),
            (ANN_RUNBOOK, runbook, 500),
            (ANN_ONCALL, ann.get(ANN_ONCALL, ""), 200),
            (ANN_BRANCH, ann.get(ANN_BRANCH, ""), 200),
        ):
            if len(value) > limit:
                ctx.error(
                    e.doc, e, f"metadata.annotations[{key}]", f"is longer than {limit} characters"
                )
        return repo, runbook

    def _dependencies(self, e):
        """{(kind, slug)} of ``spec.dependsOn``: components and resources."""
        deps = set()
        for i, value in enumerate(_ref_list(self.ctx, e, "spec.dependsOn")):
            kind, slug = self._resolve(
                e, f"spec.dependsOn[{i}]", value, "component", ("component", "resource")
            )
            if not kind:
                continue
            if kind == "component" and slug == e.slug:
                self.ctx.error(
                    e.doc, e, f"spec.dependsOn[{i}]", "a component cannot depend on itself"
                )
                continue
            deps.add((kind, slug))
        return deps

    def _api_refs(self, e, fld):
        """{api slug} of ``spec.providesApis`` or ``spec.consumesApis``."""
        apis = set()
        for i, value in enumerate(_ref_list(self.ctx, e, f"spec.{fld}")):
            _, slug = self._resolve(e, f"spec.{fld}[{i}]", value, "api")
            if slug:
                apis.add(slug)
        return apis


def _stored_annotations(ann):
    """The annotations kept as they are (those mapped to columns are not, but the GitHub slug
    is when an explicit repository URL overrides it)."""
    stored = {
        k: redact_embedded_credentials(v) if isinstance(v, str) else v
        for k, v in ann.items()
        if k not in SERVICE_MAPPED_ANNOTATIONS
    }
    if ANN_GITHUB in ann and ANN_REPO in ann:
        stored[ANN_GITHUB] = ann[ANN_GITHUB]
    return stored
