"""Trigram indexes for the catalog search's substring match (``slug``/``name`` icontains, which
Django compiles to ``UPPER(col::text) LIKE UPPER('%…%')``): without them every search scans the
whole service table. PostgreSQL only, and only where the ``pg_trgm`` extension can be created
(it is a trusted extension: the database owner may create it); otherwise nothing changes."""

from django.db import DatabaseError, migrations, transaction

INDEXES = {
    "squads_service_slug_trgm": "slug",
    "squads_service_name_trgm": "name",
}


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=schema_editor.connection.alias):
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DatabaseError:
        return  # no pg_trgm here: search still works, by scanning
    for name, column in INDEXES.items():
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON squads_service "
            f"USING gin ((UPPER({column}::text)) gin_trgm_ops)"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name in INDEXES:
            schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("squads", "0002_service_search_index")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
