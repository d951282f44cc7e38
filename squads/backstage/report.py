"""What an import reports: counts per kind, warnings, and errors that name file, document,
entity and field."""

from dataclasses import dataclass, field

from .constants import REPORT_KINDS


# --- results ------------------------------------------------------------------------------------
@dataclass
class ImportIssue:
    file: str
    document: int | None = None
    entity: str = ""
    field: str = ""
    message: str = ""

    def __str__(self):
        head = self.file or "<input>"
        if self.document is not None:
            head += f": document {self.document}"
        if self.entity:
            head += f" ({self.entity})"
        return f"{head}: {self.field + ': ' if self.field else ''}{self.message}"

    def as_dict(self):
        return {
            "file": self.file,
            "document": self.document,
            "entity": self.entity,
            "field": self.field,
            "message": self.message,
        }


class ImportFailed(Exception):
    """The import found invalid entities; nothing was written. ``errors``: [ImportIssue]."""

    def __init__(self, errors, report=None):
        self.errors = list(errors)
        self.report = report
        n = len(self.errors)
        super().__init__(
            f"{n} error{'s' if n != 1 else ''}; nothing was imported:\n"
            + "\n".join(f"  {e}" for e in self.errors)
        )


@dataclass
class ImportReport:
    dry_run: bool = False
    sources: list = field(default_factory=list)
    files_read: int = 0
    documents: int = 0
    counts: dict = field(
        default_factory=lambda: {
            k: {"created": 0, "updated": 0, "unchanged": 0} for k in REPORT_KINDS
        }
    )
    skipped: dict = field(default_factory=dict)  # unsupported kind → count
    locations_followed: int = 0
    warnings: list = field(default_factory=list)
    errors: list = field(default_factory=list)

    def _total(self, what):
        return sum(c[what] for c in self.counts.values())

    @property
    def created(self):
        return self._total("created")

    @property
    def updated(self):
        return self._total("updated")

    @property
    def unchanged(self):
        return self._total("unchanged")

    @property
    def changed(self):
        return self.created + self.updated

    @property
    def ok(self):
        return not self.errors

    @property
    def summary(self) -> str:
        lines = [
            f"{'Dry run: ' if self.dry_run else ''}{self.files_read} file(s), "
            f"{self.documents} document(s), {self.locations_followed} location target(s) followed",
            f"{'would create' if self.dry_run else 'created'} {self.created}, "
            f"{'would update' if self.dry_run else 'updated'} {self.updated}, "
            f"unchanged {self.unchanged}",
        ]
        for kind in REPORT_KINDS:
            c = self.counts[kind]
            if any(c.values()):
                lines.append(
                    f"  {kind:<10} created {c['created']:>5}  updated {c['updated']:>5}  "
                    f"unchanged {c['unchanged']:>5}"
                )
        for kind, n in sorted(self.skipped.items()):
            lines.append(
                f"  skipped {n} {kind} entit{'y' if n == 1 else 'ies'} (kind not supported)"
            )
        for w in self.warnings:
            lines.append(f"warning: {w}")
        return "\n".join(lines)

    def as_dict(self):
        return {
            "dry_run": self.dry_run,
            "sources": self.sources,
            "files_read": self.files_read,
            "documents": self.documents,
            "locations_followed": self.locations_followed,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "counts": self.counts,
            "skipped": self.skipped,
            "warnings": self.warnings,
        }
