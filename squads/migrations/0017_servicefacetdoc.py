# Each facet's unfiltered answer stored as JSON text (ServiceFacetDoc), re-assembled by the
# first read after a write changed that facet's counts: the count trigger of migration 0014
# now bumps the version of the facets whose counts it changed, and squads_facet_json(facet)
# answers the stored text while it is current (squads.api.lean).

import importlib

from django.db import migrations, models

FACET_ROWS = importlib.import_module("squads.migrations.0014_servicefacetcount").FACET_ROWS
FACET_NAMES = ("owner", "tribe", "system", "lifecycle", "tier", "type", "level")
COUNTS = "squads_servicefacetcount"
UPSERT = f"""ON CONFLICT (facet, value) DO UPDATE SET n = {COUNTS}.n + EXCLUDED.n
      RETURNING facet)
    SELECT array_agg(DISTINCT facet) INTO changed FROM c WHERE facet <> '*';"""

FUNCTION = f"""
CREATE OR REPLACE FUNCTION squads_serviceview_facets() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  changed text[];
  one text;
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    DELETE FROM {COUNTS};
    SELECT array_agg(facet ORDER BY facet) INTO changed FROM squads_servicefacetdoc;
  ELSIF TG_OP = 'INSERT' THEN
    WITH c AS (INSERT INTO {COUNTS} (facet, value, n)
      SELECT f, v, COUNT(*) FROM ({FACET_ROWS.format(rows="new_rows")}) d
      GROUP BY f, v ORDER BY f, v
    {UPSERT}
  ELSIF TG_OP = 'DELETE' THEN
    WITH c AS (INSERT INTO {COUNTS} (facet, value, n)
      SELECT f, v, -COUNT(*) FROM ({FACET_ROWS.format(rows="old_rows")}) d
      GROUP BY f, v ORDER BY f, v
    {UPSERT}
  ELSE  -- UPDATE: only the values that changed (a run finishing changes none: no row locked)
    WITH c AS (INSERT INTO {COUNTS} (facet, value, n)
      SELECT f, v, SUM(d) FROM (
        SELECT f, v, 1 AS d FROM ({FACET_ROWS.format(rows="new_rows")}) a
        UNION ALL SELECT f, v, -1 FROM ({FACET_ROWS.format(rows="old_rows")}) b) d
      GROUP BY f, v HAVING SUM(d) <> 0 ORDER BY f, v
    {UPSERT}
  END IF;
  -- in the facets' order (array_agg DISTINCT sorts): concurrent writers lock them alike; a
  -- facet without its row (a flushed table) gets one: a read stores only into a row it finds
  FOREACH one IN ARRAY COALESCE(changed, '{{}}') LOOP
    INSERT INTO squads_servicefacetdoc AS d (facet, version) VALUES (one, 1)
      ON CONFLICT (facet) DO UPDATE SET version = d.version + 1;
  END LOOP;
  RETURN NULL;
END $$;

-- A facet's values and counts as the API's JSON array, count descending then value (tier as
-- a number, the others in byte order: Python's sort): the stored text while it is current,
-- else assembled from the counts and stored unless a writer changed them meanwhile (each
-- statement here sees what is committed when it starts: the version read first is the one
-- the stored text must match) or holds the row (the read does not wait for it).
CREATE FUNCTION squads_facet_json(wanted text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  doc record;
  assembled text;
BEGIN
  SELECT version, body, body_version INTO doc FROM squads_servicefacetdoc WHERE facet = wanted;
  IF FOUND AND doc.body_version = doc.version THEN
    RETURN doc.body;
  END IF;
  IF wanted = 'tier' THEN
    SELECT string_agg('{{"value":' || value || ',"count":' || n || '}}', ',') INTO assembled
      FROM (SELECT value, n FROM {COUNTS} WHERE facet = wanted AND n > 0
            ORDER BY n DESC, value::int) x;
  ELSE
    SELECT string_agg('{{"value":' || to_json(value)::text || ',"count":' || n || '}}', ',')
      INTO assembled
      FROM (SELECT value, n FROM {COUNTS} WHERE facet = wanted AND n > 0
            ORDER BY n DESC, value COLLATE "C") x;
  END IF;
  assembled := '[' || COALESCE(assembled, '') || ']';
  IF doc.version IS NOT NULL THEN
    PERFORM 1 FROM squads_servicefacetdoc WHERE facet = wanted AND version = doc.version
      FOR UPDATE SKIP LOCKED;
    IF FOUND THEN
      UPDATE squads_servicefacetdoc SET body = assembled, body_version = doc.version
        WHERE facet = wanted;
    END IF;
  END IF;
  RETURN assembled;
END $$;
INSERT INTO squads_servicefacetdoc (facet, version)
  SELECT unnest(ARRAY{list(FACET_NAMES)!r}), 0 ON CONFLICT DO NOTHING;
"""

REVERSE = (
    "DROP FUNCTION IF EXISTS squads_facet_json(text);\n"
    + importlib.import_module("squads.migrations.0014_servicefacetcount").FUNCTION.replace(
        "CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1
    ).split("CREATE TRIGGER")[0]
)


def _on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("squads", "0016_facet_order_index")]

    operations = [
        migrations.CreateModel(
            name="ServiceFacetDoc",
            fields=[
                ("facet", models.CharField(max_length=20, primary_key=True, serialize=False)),
                ("version", models.BigIntegerField(default=0)),
                ("body", models.TextField(null=True)),
                ("body_version", models.BigIntegerField(null=True)),
            ],
        ),
        migrations.RunPython(_on_postgresql(FUNCTION), _on_postgresql(REVERSE)),
    ]
