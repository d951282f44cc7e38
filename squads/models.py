"""The catalog: tribes, squads, people, memberships, services, systems, domains, APIs,
resources and the dependencies between them."""

from django.conf import settings
from django.contrib.postgres.search import SearchVectorField
from django.core.validators import MaxLengthValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone

from portal.cachegen import WatchedQuerySet
from portal.fields import CredentialURLField, EncryptedTextField

# Backstage namespace (63) + "--" + name (63): see squads.backstage.refs.
SLUG_MAX = 130


class BackstageSource(models.Model):
    """The Backstage descriptor a row was imported from (JSON text, key order kept) and what
    Backline's own export of the row looked like right after that import; the exporter starts
    from the original and overlays only what changed in Backline since."""

    backstage_entity = models.TextField(blank=True, default="")
    backstage_seen = models.TextField(blank=True, default="")

    class Meta:
        abstract = True


class Lifecycle(models.TextChoices):
    EXPERIMENTAL = "experimental", "Experimental"
    PRODUCTION = "production", "Production"
    DEPRECATED = "deprecated", "Deprecated"


# Backstage lifecycles are free strings; Backline files each under one of its three. Words seen
# in public catalogs (Backstage examples, backstage/demo, Red Hat Developer Hub, openedx...),
# compared lower-case; anything else counts as experimental.
_WORDS = {
    Lifecycle.PRODUCTION.value: (
        "production",
        "prod",
        "live",
        "ga",
        "stable",
        "released",
        "active",
        "mature",
        "supported",
        "operational",
    ),
    Lifecycle.DEPRECATED.value: (
        "deprecated",
        "decommissioned",
        "retired",
        "sunset",
        "sunsetting",
        "eol",
        "end-of-life",
        "legacy",
        "obsolete",
        "archived",
        "unmaintained",
        "inactive",
        "removed",
    ),
}
_MAP = {word: value for value, words in _WORDS.items() for word in words}


def map_lifecycle(raw: str) -> str:
    """experimental | production | deprecated for any Backstage lifecycle string."""
    return _MAP.get(raw.strip().lower(), Lifecycle.EXPERIMENTAL.value)


class LifecycleLabel:
    """``lifecycle_label``: the lifecycle as the descriptor wrote it (``decommissioned``,
    ``sandbox``...) while it still maps to the stored one, else the stored one's label."""

    @property
    def lifecycle_label(self):
        raw = getattr(self, "lifecycle_raw", "")
        if raw and map_lifecycle(raw) == self.lifecycle:
            return raw
        return self.get_lifecycle_display()


class _Named(BackstageSource):
    """Groups and entities: listed and shown by name."""

    class Meta:
        abstract = True
        ordering = ["name"]

    def __str__(self):
        return self.name


class _Group(_Named):
    """What tribes and squads both have: a parent of their own kind, contacts, links."""

    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    email = models.EmailField(blank=True)
    picture = models.URLField(max_length=500, blank=True)
    links = models.JSONField(default=list, blank=True)

    objects = WatchedQuerySet.as_manager()

    class Meta(_Named.Meta):
        abstract = True


class Tribe(_Group):
    """A group of squads (Backstage Group of type business-unit, product-area, tribe, or any
    other non-team group such as organization or department)."""

    slug = models.SlugField(max_length=SLUG_MAX, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=50, default="tribe")

    def get_absolute_url(self):
        return reverse("squads:tribe_detail", args=[self.slug])


class Squad(_Group):
    slug = models.SlugField(max_length=SLUG_MAX, unique=True)
    name = models.CharField(max_length=200)
    mission = models.TextField(blank=True)
    tribe = models.ForeignKey(
        Tribe, null=True, blank=True, on_delete=models.SET_NULL, related_name="squads"
    )
    chat_channel = models.CharField(max_length=200, blank=True)
    oncall_contact = models.CharField(max_length=200, blank=True)

    def get_absolute_url(self):
        return reverse("squads:squad_detail", args=[self.slug])


class Person(BackstageSource):
    slug = models.SlugField(max_length=150, unique=True)
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    picture = models.URLField(max_length=500, blank=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="person",
    )
    # identity from the organisation's directory (issue 15): the OpenID provider's ``sub``, the
    # SCIM ``externalId``; ``active`` false when the directory deactivated the person
    oidc_subject = models.CharField(max_length=255, null=True, blank=True, unique=True)
    external_id = models.CharField(max_length=255, blank=True, db_index=True)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "people"

    def __str__(self):
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        MEMBER = "member", "Member"
        LEAD = "lead", "Lead"
        PRODUCT_OWNER = "product_owner", "Product owner"

    class Source(models.TextChoices):
        """Where a membership came from: typed in Backline, or the directory (OIDC group claim or
        SCIM group). Directory memberships follow the directory; manual ones are left alone."""

        MANUAL = "manual", "Manual"
        DIRECTORY = "directory", "Directory"

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="memberships")
    squad = models.ForeignKey(Squad, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.MEMBER)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.MANUAL)

    objects = WatchedQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["person", "squad"], name="membership_unique")
        ]
        ordering = ["squad__name", "person__name"]

    def __str__(self):
        return f"{self.person} in {self.squad} ({self.role})"


class _Entity(_Named):
    """What domains, systems, APIs and resources all have."""

    slug = models.SlugField(max_length=SLUG_MAX, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True)
    links = models.JSONField(default=list, blank=True)

    class Meta(_Named.Meta):
        abstract = True


class Domain(_Entity):
    owner = models.ForeignKey(
        Squad, null=True, blank=True, on_delete=models.SET_NULL, related_name="domains"
    )
    owner_tribe = models.ForeignKey(
        Tribe, null=True, blank=True, on_delete=models.SET_NULL, related_name="domains"
    )


class System(_Entity):
    owner = models.ForeignKey(
        Squad, null=True, blank=True, on_delete=models.SET_NULL, related_name="systems"
    )
    owner_tribe = models.ForeignKey(
        Tribe, null=True, blank=True, on_delete=models.SET_NULL, related_name="systems"
    )
    domain = models.ForeignKey(
        Domain, null=True, blank=True, on_delete=models.SET_NULL, related_name="systems"
    )

    objects = WatchedQuerySet.as_manager()

    def get_absolute_url(self):
        return reverse("squads:system_detail", args=[self.slug])


class Tag(models.Model):
    name = models.SlugField(max_length=63, unique=True)

    objects = WatchedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Service(LifecycleLabel, BackstageSource):
    """A Backstage Component: a service, website, library, ..."""

    slug = models.SlugField(max_length=SLUG_MAX, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # owner_id lookups (a squad's services, SET NULL on its deletion) use the (owner, name) index
    owner = models.ForeignKey(
        Squad,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="services",
        db_index=False,
    )
    system = models.ForeignKey(
        System, null=True, blank=True, on_delete=models.SET_NULL, related_name="services"
    )
    # Not indexed here: lists, counts and facets filter the read form's columns (ServiceView)
    type = models.CharField(max_length=50, default="service")
    lifecycle = models.CharField(
        max_length=20, choices=Lifecycle.choices, default=Lifecycle.EXPERIMENTAL
    )
    # Backstage allows any lifecycle string: as written in the descriptor ("" = ``lifecycle``).
    lifecycle_raw = models.CharField(max_length=200, blank=True, default="")
    tier = models.PositiveSmallIntegerField(
        default=3, choices=[(1, "Tier 1"), (2, "Tier 2"), (3, "Tier 3")]
    )
    # credentials in it (https://user:token@host/…) are encrypted at rest, shown as ****
    repository_url = CredentialURLField(
        max_length=1000, blank=True, validators=[MaxLengthValidator(500)]
    )
    default_branch = models.CharField(max_length=200, default="main")
    runbook_url = models.URLField(max_length=500, blank=True)
    oncall = models.CharField(max_length=200, blank=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="services")
    links = models.JSONField(default=list, blank=True)
    annotations = models.JSONField(default=dict, blank=True)
    webhook_secret = EncryptedTextField(blank=True, validators=[MaxLengthValidator(200)])
    metrics_urls = models.JSONField(default=list, blank=True)
    provides_apis = models.ManyToManyField("Api", blank=True, related_name="providers")
    consumes_apis = models.ManyToManyField("Api", blank=True, related_name="consumers")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = WatchedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        indexes = [
            models.Index(fields=["owner", "name"]),
            models.Index(fields=["name"], name="squads_service_name_idx"),  # default order
        ]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("squads:service_detail", args=[self.slug])


class Api(LifecycleLabel, _Entity):
    type = models.CharField(max_length=50, default="openapi")
    lifecycle = models.CharField(
        max_length=20, choices=Lifecycle.choices, default=Lifecycle.PRODUCTION
    )
    lifecycle_raw = models.CharField(max_length=200, blank=True, default="")
    owner = models.ForeignKey(
        Squad, null=True, blank=True, on_delete=models.SET_NULL, related_name="apis"
    )
    system = models.ForeignKey(
        System, null=True, blank=True, on_delete=models.SET_NULL, related_name="apis"
    )
    definition = models.TextField(blank=True)

    class Meta(_Entity.Meta):
        verbose_name = "API"


class Resource(_Entity):
    type = models.CharField(max_length=50, default="database")
    owner = models.ForeignKey(
        Squad, null=True, blank=True, on_delete=models.SET_NULL, related_name="resources"
    )
    system = models.ForeignKey(
        System, null=True, blank=True, on_delete=models.SET_NULL, related_name="resources"
    )


class Dependency(models.Model):
    """``source`` depends on exactly one of ``target_service`` / ``target_resource``."""

    source = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="dependencies")
    target_service = models.ForeignKey(
        Service, null=True, blank=True, on_delete=models.CASCADE, related_name="dependents"
    )
    target_resource = models.ForeignKey(
        Resource, null=True, blank=True, on_delete=models.CASCADE, related_name="dependents"
    )

    objects = WatchedQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "dependencies"
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(target_service__isnull=False, target_resource__isnull=True)
                    | models.Q(target_service__isnull=True, target_resource__isnull=False)
                ),
                name="dependency_one_target",
            ),
            models.UniqueConstraint(
                fields=["source", "target_service"],
                condition=models.Q(target_service__isnull=False),
                name="dependency_unique_service",
            ),
            models.UniqueConstraint(
                fields=["source", "target_resource"],
                condition=models.Q(target_resource__isnull=False),
                name="dependency_unique_resource",
            ),
        ]

    def __str__(self):
        return f"{self.source} → {self.target}"

    @property
    def target(self):
        return self.target_service or self.target_resource


class ForeignEntity(models.Model):
    """An imported Backstage entity of a kind Backline does not model (Template, Environment,
    AiResource, custom kinds): stored as written and exported again."""

    kind = models.CharField(max_length=63)  # lower-case
    namespace = models.CharField(max_length=63, default="default")  # lower-case
    name = models.CharField(max_length=63)  # lower-case
    owner = models.ForeignKey(
        Squad, null=True, blank=True, on_delete=models.SET_NULL, related_name="foreign_entities"
    )
    backstage_entity = models.TextField()

    class Meta:
        ordering = ["kind", "namespace", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "namespace", "name"], name="foreign_entity_unique"
            )
        ]

    def __str__(self):
        return f"{self.kind}:{self.namespace}/{self.name}"


class Location(models.Model):
    """A registered Backstage catalog location (path or URL), refreshed periodically by beat."""

    target = models.CharField(max_length=1000, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_refreshed_at = models.DateTimeField(null=True, blank=True)
    last_status = models.CharField(max_length=20, blank=True)  # ok | error
    last_error = models.TextField(blank=True)
    last_summary = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["target"]

    def __str__(self):
        return self.target


class ServiceView(models.Model):
    """A service's read form, stitched at write time (``squads/stitch.py``): what the list
    shows, the API's detail document and the scorecard, recomputed in the transaction of every
    write that changes them, for exactly the services affected. Lists filter and sort on the
    indexed columns and return ``row``; the detail API returns ``detail``; ``document`` is the
    full-text vector of name, slug, description and tags (PostgreSQL; GIN-indexed)."""

    service = models.OneToOneField(
        Service, primary_key=True, on_delete=models.CASCADE, related_name="view"
    )
    slug = models.SlugField(max_length=SLUG_MAX, unique=True)
    name = models.CharField(max_length=200)
    owner_slug = models.CharField(max_length=SLUG_MAX, blank=True)  # (owner_slug, name) index
    tribe_slug = models.CharField(max_length=SLUG_MAX, blank=True, db_index=True)
    system_slug = models.CharField(max_length=SLUG_MAX, blank=True, db_index=True)
    # the names the catalog page shows beside the slugs: a rename re-stitches (stitch.RESOLVERS)
    owner_name = models.CharField(max_length=200, blank=True, default="")
    tribe_name = models.CharField(max_length=200, blank=True, default="")
    system_name = models.CharField(max_length=200, blank=True, default="")
    type = models.CharField(max_length=50, db_index=True)
    lifecycle = models.CharField(max_length=20, db_index=True)
    tier = models.PositiveSmallIntegerField(db_index=True)
    level = models.CharField(max_length=10, blank=True, db_index=True)  # scorecard level
    updated_at = models.DateTimeField()
    row = models.JSONField()
    detail = models.JSONField()
    scorecard = models.JSONField()
    document = SearchVectorField(null=True)
    # the catalog page's row as HTML before and after its scorecard and last-run cells
    # (squads.rowhtml); empty in a form stitched before they existed
    html_head = models.TextField(blank=True, default="")
    html_tail = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["name"]
        indexes = [
            models.Index(fields=["name"], name="squads_sview_name_idx"),
            models.Index(fields=["owner_slug", "name"], name="squads_sview_owner_name_idx"),
        ]

    def __str__(self):
        return self.slug


from squads.discovery.models import DiscoveredEntity, DiscoveredRepository  # noqa: E402,F401


class ServiceFacetCount(models.Model):
    """How many read forms have each value of each facet column (``facet="*"``: all of them),
    kept in the writing transaction by statement triggers on ``ServiceView`` (PostgreSQL,
    migration 0014): the catalog's unfiltered facets read these rows instead of scanning every
    service. A write that changes no facet column (a run finishing) touches no row here."""

    facet = models.CharField(max_length=20)
    value = models.CharField(max_length=SLUG_MAX, blank=True)
    n = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["facet", "value"], name="squads_facet_value_uniq")
        ]


class ServiceFacetDoc(models.Model):
    """Each facet's unfiltered answer (its values and counts as JSON text) as last assembled
    from ``ServiceFacetCount``, valid while ``body_version`` equals ``version``: the count
    triggers bump ``version`` of exactly the facets whose counts a write changed, in that
    write's transaction (migration 0017), and the next read re-assembles that facet only
    (``squads_facet_json``). A write that changes no facet column (a run finishing) leaves
    every document valid; at 100,000 services the owner facet's 10,000 values are one read."""

    facet = models.CharField(max_length=20, primary_key=True)
    version = models.BigIntegerField(default=0)
    body = models.TextField(null=True)
    body_version = models.BigIntegerField(null=True)


# the number of read forms, as the triggers keep it (an SQL expression; PostgreSQL)
STORED_TOTAL_SQL = (
    f"COALESCE((SELECT n FROM {ServiceFacetCount._meta.db_table} "
    "WHERE facet = '*' AND value = ''), 0)"
)
