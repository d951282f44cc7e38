"""The owner's, tribe's and system's names in the read form (issue 16): the catalog page reads
them with the row instead of three subqueries per listed row; a rename re-stitches."""

from django.db import migrations, models

# Correlated subqueries (not UPDATE ... FROM): the same statement runs on SQLite (`make run`).
BACKFILL = """
UPDATE squads_serviceview SET
    owner_name = COALESCE((SELECT q.name FROM squads_service s
                           JOIN squads_squad q ON q.id = s.owner_id
                           WHERE s.id = squads_serviceview.service_id), ''),
    tribe_name = COALESCE((SELECT t.name FROM squads_service s
                           JOIN squads_squad q ON q.id = s.owner_id
                           JOIN squads_tribe t ON t.id = q.tribe_id
                           WHERE s.id = squads_serviceview.service_id), ''),
    system_name = COALESCE((SELECT y.name FROM squads_service s
                            JOIN squads_system y ON y.id = s.system_id
                            WHERE s.id = squads_serviceview.service_id), '')
"""


class Migration(migrations.Migration):
    dependencies = [("squads", "0012_merge_20261201_1841")]

    operations = [
        migrations.AddField(
            model_name="serviceview",
            name=name,
            field=models.CharField(blank=True, default="", max_length=200),
        )
        for name in ("owner_name", "tribe_name", "system_name")
    ] + [migrations.RunSQL(BACKFILL, migrations.RunSQL.noop)]
