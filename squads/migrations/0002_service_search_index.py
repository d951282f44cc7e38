"""An index on the default order (name), and a GIN index for the catalog's full-text search, on PostgreSQL only (SQLite has no such index;
its search stays a LIKE scan). The expression is exactly ``squads.filters.search_vector()`` as
Django compiles it, so the planner uses the index for ``document @@ query``."""

from django.db import migrations, models

INDEX = "squads_service_search_gin"
CREATE = f"""
CREATE INDEX IF NOT EXISTS {INDEX} ON squads_service USING gin ((
    setweight(to_tsvector('english'::regconfig, COALESCE(name, '')), 'A')
    || setweight(to_tsvector('simple'::regconfig, COALESCE(slug, '')), 'A')
    || setweight(to_tsvector('english'::regconfig, COALESCE(description, '')), 'B')
))
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("squads", "0001_initial")]

    operations = [
        migrations.AddIndex(
            model_name="service",
            index=models.Index(fields=["name"], name="squads_service_name_idx"),
        ),
        migrations.RunPython(create, drop, elidable=False),
    ]
