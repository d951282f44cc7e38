"""Search and facets stay fast without autovacuum (issue 16).

- The GIN indexes of the catalog (full-text vector, trigram slug and name) keep a short pending
  list (``gin_pending_list_limit = 256`` kB, was the 4 MB default): inserts go to that list,
  which only VACUUM or the list reaching its limit merges into the index, and every search
  scans it linearly; on a PostgreSQL without autovacuum (this one) a freshly stitched catalog
  of 10,000 services had all 10,000 entries pending (476 pages read per search, 7 ms for a
  41-row match; 0.4 ms merged). ``fastupdate = off`` would keep no list, but doubled the time
  to stitch 10,000 services (13 s -> 26 s here). The pending lists are merged once here.
- The read form's heap keeps only its indexed columns: the JSON documents and the vector are
  stored out of line (TOAST) from 128 bytes on, so the facet counts' scan reads 2 MB instead of
  20 MB at 10,000 services. Rows move as they are re-stitched.
"""

from django.db import migrations

GIN = (
    "squads_sview_document_gin",
    "squads_sview_slug_trgm",
    "squads_sview_name_trgm",
    "squads_service_search_gin",
    "squads_service_slug_trgm",
    "squads_service_name_trgm",
)


def _existing(schema_editor):
    with schema_editor.connection.cursor() as cur:
        cur.execute(
            "SELECT name FROM unnest(%s::text[]) name WHERE to_regclass(name) IS NOT NULL",
            [list(GIN)],
        )
        return [r[0] for r in cur.fetchall()]


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in _existing(schema_editor):
        schema_editor.execute(f"ALTER INDEX {name} SET (gin_pending_list_limit = 256)")
        schema_editor.execute(f"SELECT gin_clean_pending_list('{name}'::regclass)")
    schema_editor.execute("ALTER TABLE squads_serviceview SET (toast_tuple_target = 128)")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in _existing(schema_editor):
        schema_editor.execute(f"ALTER INDEX {name} RESET (gin_pending_list_limit)")
    schema_editor.execute("ALTER TABLE squads_serviceview RESET (toast_tuple_target)")


class Migration(migrations.Migration):
    dependencies = [("squads", "0008_merge_0006_h16_service_view_0007_merge_20261201_1300")]

    operations = [migrations.RunPython(forwards, backwards)]
