# The unfiltered facets read each facet's values in the order they answer them (count
# descending, then value in byte order: Python's sort), along this index (squads.api.lean).

from django.db import migrations

INDEX = (
    "CREATE INDEX IF NOT EXISTS squads_facet_order_idx ON squads_servicefacetcount "
    '(facet, n DESC, value COLLATE "C") WHERE n > 0'
)
DROP = "DROP INDEX IF EXISTS squads_facet_order_idx"


def _on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("squads", "0015_serviceview_html_parts")]

    operations = [migrations.RunPython(_on_postgresql(INDEX), _on_postgresql(DROP))]
