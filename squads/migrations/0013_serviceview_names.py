"""The owner's, tribe's and system's names in the read form (issue 16): the catalog page reads
them with the row instead of three subqueries per listed row; a rename re-stitches."""

from django.db import migrations, models

BACKFILL = """
UPDATE squads_serviceview v SET
    owner_name = COALESCE(q.name, ''), tribe_name = COALESCE(t.name, ''),
    system_name = COALESCE(y.name, '')
FROM squads_service s
LEFT JOIN squads_squad q ON q.id = s.owner_id
LEFT JOIN squads_tribe t ON t.id = q.tribe_id
LEFT JOIN squads_system y ON y.id = s.system_id
WHERE s.id = v.service_id
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
