"""What discovery found: one row per repository of the installation, one per entity a
repository's descriptor defines (``orphaned_at`` once it is gone from there)."""

from django.db import models
from django.utils import timezone


class DiscoveredRepository(models.Model):
    class Status(models.TextChoices):
        OK = "ok"
        ERROR = "error"  # the descriptor is invalid or GitHub refused: nothing was imported
        MISSING = "missing"  # no descriptor at the path
        GONE = "gone"  # no longer in the installation

    full_name = models.CharField(max_length=200, unique=True)
    installation_id = models.BigIntegerField(default=0)
    default_branch = models.CharField(max_length=255, default="main")
    html_url = models.CharField(max_length=500, blank=True)
    path = models.CharField(max_length=500, default="catalog-info.yaml")
    # every file the descriptor's locations led to (the descriptor first): a push touching one
    # rescans the repository
    files = models.JSONField(default=list, blank=True)
    pushed_at = models.CharField(max_length=40, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, blank=True)
    error = models.TextField(blank=True)
    errors = models.JSONField(default=list, blank=True)  # the importer's issues, as dicts
    owner = models.ForeignKey(  # the squad told about errors (the owner the descriptor names)
        "squads.Squad", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    scanned_at = models.DateTimeField(null=True, blank=True)
    imported_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        app_label = "squads"
        ordering = ["full_name"]

    def __str__(self):
        return self.full_name

    @property
    def file_url(self) -> str:
        return self.url_of(self.path)

    def url_of(self, path: str) -> str:
        base = self.html_url or self.full_name
        return f"{base}/blob/{self.default_branch}/{path}"


class DiscoveredEntity(models.Model):
    repository = models.ForeignKey(
        DiscoveredRepository, on_delete=models.CASCADE, related_name="entities"
    )
    kind = models.CharField(max_length=40)  # component, api, system, domain, resource, ...
    slug = models.CharField(max_length=200)
    path = models.CharField(
        max_length=500, blank=True
    )  # the file defining it (a Location's target)
    orphaned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "squads"
        ordering = ["kind", "slug"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "slug"], name="discovered_entity_unique")
        ]

    def __str__(self):
        return f"{self.kind}:{self.slug}"


def descriptor_of(kind: str, slug: str) -> tuple[DiscoveredRepository, str] | None:
    """The repository whose descriptors define this entity now, and the file that does
    (None: edited in Backline)."""
    entity = (
        DiscoveredEntity.objects.filter(kind=kind, slug=slug, orphaned_at__isnull=True)
        .select_related("repository")
        .first()
    )
    if entity is None:
        return None
    return entity.repository, entity.path or entity.repository.path
