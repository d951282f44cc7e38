"""Drop the indexes of the tables a Backstage import writes that no query uses (issue 16: the
first import of 11,550 entities spent ~4.5 s in COPY, most of it maintaining indexes).

Checked against every query of the catalog page, the API list / filters / search / facets, the
lean read path and the admin (EXPLAINs in the commit message):

- ``*_like`` (``varchar_pattern_ops``), which Django adds beside every indexed or unique
  CharField/SlugField on PostgreSQL: they serve only a case-sensitive ``LIKE 'prefix%'``
  (``startswith``), which nothing asks of these columns (the search's substring match is
  ``UPPER(col) LIKE UPPER('%…%')``, served by the trigram indexes); equality is served by
  the plain btree (or the unique constraint's index) beside each.
- ``squads_service``'s full-text and trigram GIN indexes (migrations 0002, 0003): every
  search runs over the read form (``squads_serviceview``'s own GIN indexes, ``search_views``);
  ``search_services`` over ``Service`` is only reached by an update or delete sent with
  ``?search=`` (a filter of one row by its slug).
- ``squads_service.type/lifecycle/tier`` and ``owner_id``, ``squads_serviceview.owner_slug``
  (the AlterFields): lists and counts filter the read form's columns; ``owner`` lookups are
  served by the ``(owner, name)`` / ``(owner_slug, name)`` indexes.
- the M2M tables' ``service_id`` index: the unique ``(service_id, …)`` index serves it.

PostgreSQL only; the reverse creates them again."""

import django.db.models.deletion
from django.db import migrations, models

LIKE = {  # name: (table, column)
    "squads_service_slug_9224a91f_like": ("squads_service", "slug"),
    "squads_serviceview_slug_5f892e85_like": ("squads_serviceview", "slug"),
    "squads_serviceview_tribe_slug_9998f300_like": ("squads_serviceview", "tribe_slug"),
    "squads_serviceview_system_slug_f2a502b5_like": ("squads_serviceview", "system_slug"),
    "squads_serviceview_type_c752430c_like": ("squads_serviceview", "type"),
    "squads_serviceview_lifecycle_57dacd5a_like": ("squads_serviceview", "lifecycle"),
    "squads_serviceview_level_ca8a9d6a_like": ("squads_serviceview", "level"),
}
M2M = {  # name: (table, column)
    "squads_service_tags_service_id_877452d8": ("squads_service_tags", "service_id"),
    "squads_service_provides_apis_service_id_9002d5a6": (
        "squads_service_provides_apis",
        "service_id",
    ),
    "squads_service_consumes_apis_service_id_4ca734e8": (
        "squads_service_consumes_apis",
        "service_id",
    ),
}
GIN = "USING gin ({}) WITH (gin_pending_list_limit = 256)"
SERVICE_GIN = {
    "squads_service_search_gin": GIN.format(
        "(setweight(to_tsvector('english'::regconfig, COALESCE(name, '')), 'A')"
        " || setweight(to_tsvector('simple'::regconfig, COALESCE(slug, '')), 'A')"
        " || setweight(to_tsvector('english'::regconfig, COALESCE(description, '')), 'B'))"
    ),
    "squads_service_slug_trgm": GIN.format("(UPPER(slug::text)) gin_trgm_ops"),
    "squads_service_name_trgm": GIN.format("(UPPER(name::text)) gin_trgm_ops"),
}


def _definitions():
    out = {name: f"ON {t} ({c} varchar_pattern_ops)" for name, (t, c) in LIKE.items()}
    out.update({name: f"ON {t} ({c})" for name, (t, c) in M2M.items()})
    out.update({name: f"ON squads_service {using}" for name, using in SERVICE_GIN.items()})
    return out


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name in _definitions():
            schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
        trgm = cur.fetchone() is not None
    for name, definition in _definitions().items():
        if trgm or "gin_trgm_ops" not in definition:
            schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} {definition}")


class Migration(migrations.Migration):
    dependencies = [
        ("squads", "0010_merge_20261201_1521"),
    ]

    operations = [
        migrations.RunPython(drop, create, elidable=False),
        migrations.AlterField(
            model_name="service",
            name="lifecycle",
            field=models.CharField(
                choices=[
                    ("experimental", "Experimental"),
                    ("production", "Production"),
                    ("deprecated", "Deprecated"),
                ],
                default="experimental",
                max_length=20,
            ),
        ),
        migrations.AlterField(
            model_name="service",
            name="owner",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="services",
                to="squads.squad",
            ),
        ),
        migrations.AlterField(
            model_name="service",
            name="tier",
            field=models.PositiveSmallIntegerField(
                choices=[(1, "Tier 1"), (2, "Tier 2"), (3, "Tier 3")], default=3
            ),
        ),
        migrations.AlterField(
            model_name="service",
            name="type",
            field=models.CharField(default="service", max_length=50),
        ),
        migrations.AlterField(
            model_name="serviceview",
            name="owner_slug",
            field=models.CharField(blank=True, max_length=130),
        ),
    ]
