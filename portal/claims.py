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

``fan_out(claim, send, batch, most)`` is a dispatcher's tick: claim batch after batch of what
was due when the tick started and send each to a worker, until a batch comes back short
(nothing more was due then) — never chasing the items that fall due while it claims, which
kept a tick claiming batches of 2 or 3 for as long as its cap allowed.

``update_rows(objs, fields)`` writes what a claimed batch worked out, each row its own values,
in one ``UPDATE … FROM unnest(%s::type[], …)`` on PostgreSQL, one array parameter per column
(Django's ``bulk_update`` builds a ``CASE`` per field whose expressions cost ~1 ms of Python per
row; a ``VALUES`` list of one parameter per cell cost ~40 % more than the arrays on 800 rows);
``bulk_update`` elsewhere. Like
``WatchedQuerySet.bulk_update`` it announces the write (``cachegen.rows_changed``).
"""

from django.db import connection, transaction
from django.db.models import F
from django.db.models.expressions import RawSQL

from portal.cachegen import rows_changed


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


def update_rows(objs, fields: list[str], batch_size: int = 1000) -> int:
    """Save ``fields`` of the model instances ``objs`` (one model), in one statement per
    ``batch_size`` rows. Returns the rows written."""
    objs = list(objs)
    if not objs:
        return 0
    model = type(objs[0])
    opts = model._meta
    pk = opts.pk
    cols = [opts.get_field(f) for f in fields]
    if connection.vendor != "postgresql":
        n = _update_rows_each(opts.db_table, pk, cols, objs)
    else:
        n = _update_rows_unnest(opts.db_table, pk, cols, objs, batch_size)
    if n and rows_changed.has_listeners(model):
        rows_changed.send(sender=model, fields=set(fields), pks=[o.pk for o in objs])
    return n


def _update_rows_each(table, pk, cols, objs) -> int:
    """SQLite (``make run``): one prepared ``UPDATE`` run for every row (``executemany``), not
    ``bulk_update``'s ``CASE WHEN`` per column, which SQLite evaluates row by row for every
    row it updates: a back-filled fleet took 57 s to save instead of 11 s."""
    sets = ", ".join(f'"{c.column}" = %s' for c in cols)
    sql = f'UPDATE "{table}" SET {sets} WHERE "{pk.column}" = %s'
    params = [
        [*(f.get_db_prep_save(getattr(obj, f.attname), connection) for f in cols), obj.pk]
        for obj in objs
    ]
    with connection.cursor() as cur:
        cur.executemany(sql, params)
        return len(objs) if cur.rowcount < 0 else cur.rowcount


def _update_rows_unnest(table, pk, cols, objs, batch_size) -> int:
    """PostgreSQL: one ``UPDATE ... FROM unnest(arrays)`` per ``batch_size`` rows."""
    names = ", ".join(f'"{c.column}" = v."{c.column}"' for c in cols)
    arrays = ", ".join(f"%s::{f.cast_db_type(connection)}[]" for f in [pk, *cols])
    columns = ", ".join(f'"{f.column}"' for f in [pk, *cols])
    sql = (
        f"UPDATE {table} AS t SET {names} FROM unnest({arrays}) AS v({columns}) "
        f'WHERE t."{pk.column}" = v."{pk.column}"'
    )
    n = 0
    with connection.cursor() as cur:
        for k in range(0, len(objs), batch_size):
            chunk = objs[k : k + batch_size]
            params = [
                [f.get_db_prep_save(getattr(obj, f.attname), connection) for obj in chunk]
                for f in [pk, *cols]
            ]
            cur.execute(sql, params)
            n += cur.rowcount
    return n


def fan_out(claim, send, batch: int, most: int, first: list | None = None) -> int:
    """Call ``claim()`` (claiming up to ``batch`` items due at one fixed time; ``first``: the
    first claim's answer, already made) and ``send(ids)`` each non-empty answer, until one is
    short of ``batch`` or ``most`` items went. Returns the items sent. Nothing due: one claim."""
    n = 0
    ids = claim() if first is None else first
    while ids:
        send(ids)
        n += len(ids)
        if len(ids) < batch or n >= most:
            break
        ids = claim()
    return n


def ids_in(ids):
    """``ids`` for a ``pk__in=`` filter: on PostgreSQL one array parameter
    (``IN (SELECT unnest(%s::bigint[]))``), so a claimed batch of 500 ids is not 500 parameters
    for Django to compile and psycopg to convert; the list itself elsewhere."""
    ids = list(ids)
    if not ids or connection.vendor != "postgresql":
        return ids  # none: Django answers an empty ``IN`` without a query
    return RawSQL("SELECT unnest(%s::bigint[])", [ids])
