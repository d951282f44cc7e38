"""Claiming due rows in batches, for the controllers that beat ticks (releases, alert rules,
scrape targets).

``claim(queryset, field, until, limit)`` moves ``field`` of up to ``limit`` rows of the due
``queryset`` (earliest ``field`` first) to ``until`` and returns their ids, in one statement:
``UPDATE … WHERE id IN (SELECT … ORDER BY … LIMIT … FOR UPDATE SKIP LOCKED) RETURNING id`` on
PostgreSQL, so concurrent claimers get disjoint sets without waiting for each other; on SQLite
(the embedded mode) the one ``UPDATE`` statement holds the database's write lock, which
serialises claimers the same way. Moving the due field is the lease: a claimer that dies leaves
the rows to be claimed again once ``until`` has passed.

A periodic controller passes ``step`` (its interval) instead: on PostgreSQL each row then moves
to ``GREATEST(field + step, until)`` (its own phase, so a row claimed a little late is not
pushed later every round; ``until`` is the floor) and to ``until`` when ``field`` is NULL; on
SQLite every row moves to ``until``.
"""

from django.db import connection, transaction
from django.db.models import F


def claim(queryset, field: str, until, limit: int, step=None) -> list[int]:
    model = queryset.model
    opts = model._meta
    column = opts.get_field(field).column
    pk = opts.pk.column
    inner = queryset.order_by(F(field).asc(nulls_first=True)).values("pk")[:limit]
    with transaction.atomic():
        if connection.features.has_select_for_update_skip_locked:
            inner = inner.select_for_update(skip_locked=True)
        sql, params = inner.query.sql_with_params()
        value = opts.get_field(field).get_db_prep_save(until, connection)
        new, args = "%s", [value]
        if step is not None and connection.vendor == "postgresql":
            new, args = f"GREATEST(COALESCE({column} + %s, %s), %s)", [step, value, value]
        with connection.cursor() as cur:
            cur.execute(
                f"UPDATE {opts.db_table} SET {column} = {new} WHERE {pk} IN ({sql}) RETURNING {pk}",
                [*args, *params],
            )
            return [row[0] for row in cur.fetchall()]
