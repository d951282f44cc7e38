"""The read form's pages keep room for re-stitched rows (issue 16).

Every finished pipeline run re-stitches its service's ``ServiceView`` row. With the default
fillfactor (100) a seeded or imported table has full pages, so no update can be HOT (a new row
version on the same page, no new index entries): each one added an entry to every index of the
table (eleven) and, without autovacuum, left them all to be skipped by every later read. At 80
the pages keep a fifth free for the new versions; rows whose indexed columns do not change are
then updated in place (and rows that do not change at all are not written: ``bulk.upsert``).
"""

from django.db import migrations


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE squads_serviceview SET (fillfactor = 80)")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE squads_serviceview RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("squads", "0010_merge_20261201_1521")]

    operations = [migrations.RunPython(forwards, backwards)]
