"""Claiming due rows in batches, for the controllers that beat ticks (releases, alert rules,
scrape targets).

``claim(queryset, field, until, limit)`` moves ``field`` of up to ``limit`` rows of the due
``queryset`` (earliest ``field`` first) to ``until`` and returns their ids, in one statement:
``WITH claimed AS (SELECT id … ORDER BY … LIMIT … FOR UPDATE SKIP LOCKED) UPDATE … WHERE id IN
claimed RETURNING id`` on
PostgreSQL, so concurrent claimers get disjoint sets without waiting for each other; on SQLite
(the embedded mode) the one ``UPDATE`` statement holds the database's write lock, which
serialises claimers the same way. Moving the due field is the lease: a claimer that dies leaves
the rows to be claimed again once ``until`` has passed.

A periodic controller passes ``step`` (its interval) and a ``floor``: on PostgreSQL each row
then moves to ``GREATEST(field + step, floor)`` (its own phase, so a row claimed a little late
is not pushed later every round, and one far behind is not claimed again at once), and to
``until`` when ``field`` is NULL; on SQLite every row moves to ``until``.
"""

from django.db import connection, transaction
from django.db.models import F


def claim(queryset, field: str, until, limit: int, step=None, floor=None) -> list[int]:
    model = queryset.model
    opts = model._meta
    column = opts.get_field(field).column
    pk = opts.pk.column
    inner = queryset.order_by(F(field).asc(nulls_first=True)).values("pk")[:limit]
    with transaction.atomic():
        if connection.features.has_select_for_update_skip_locked:
            inner = inner.select_for_update(skip_locked=True)
        sql, params = inner.query.sql_with_params()
        prep = opts.get_field(field).get_db_prep_save
        new, args = "%s", [prep(until, connection)]
        if step is not None and connection.vendor == "postgresql":
            new = f"CASE WHEN {column} IS NULL THEN %s ELSE GREATEST({column} + %s, %s) END"
            args = [*args, step, prep(floor, connection)]
        # the locking subquery as a CTE: run once, before the UPDATE reads a row
        cte = "MATERIALIZED " if connection.vendor == "postgresql" else ""
        with connection.cursor() as cur:
            cur.execute(
                f"WITH claimed AS {cte}({sql}) UPDATE {opts.db_table} SET {column} = {new} "
                f"WHERE {pk} IN (SELECT * FROM claimed) RETURNING {pk}",
                [*params, *args],
            )
            return [row[0] for row in cur.fetchall()]
