"""Bulk writes of plain rows: COPY on PostgreSQL, ``bulk_create`` elsewhere (the Backstage
importer's writer, the stitched read form)."""

import json

from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.utils import timezone

from portal.fields import CredentialURLField, EncryptedTextField

BATCH = 1000
EMPTY_JSON = {list: "[]", dict: "{}"}


def attnames(values, fk_maps):
    """{"owner": "team-a"} → {"owner_id": 7} for the FKs in ``fk_maps``."""
    out = {}
    for k, v in values.items():
        if k in fk_maps:
            out[f"{k}_id"] = fk_maps[k].get(v) if v else None
        else:
            out[k] = v
    return out


def insert(model, rows, *, with_pk=False):
    """Insert plain rows (dicts keyed by attname, a list or an iterable read once: with COPY,
    rows a generator builds are sent as built); unspecified columns get the model default
    (the primary key too, unless ``with_pk``). PostgreSQL: one COPY per table; elsewhere:
    bulk_create."""
    if isinstance(rows, (list, tuple)) and not rows:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_create([model(**r) for r in rows], batch_size=BATCH)
        return
    now = timezone.now()
    fields = [f for f in model._meta.concrete_fields if with_pk or not f.primary_key]
    defaults = {}
    for f in fields:
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            defaults[f.attname] = now
        else:
            defaults[f.attname] = f.get_default()
    conn = connections[DEFAULT_DB_ALIAS]
    cols = [(f.attname, defaults[f.attname], _preparer(f, conn)) for f in fields]
    qn = conn.ops.quote_name
    sql = f"COPY {qn(model._meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) FROM STDIN"
    with conn.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for r in rows:
            copy.write_row(
                [
                    prep(r.get(name, default)) if prep else r.get(name, default)
                    for name, default, prep in cols
                ]
            )


def _preparer(field, conn):
    """How a value of ``field`` goes into COPY: None for as it is (ints, strings, None); JSON
    as its text (what the field's ``get_db_prep_save`` would send), each object encoded once
    (rows sharing a document, such as the scorecards of services with the same results, cost
    one encoding); datetime and encrypted values adapted by the field (portal.fields: secrets
    reach the table only encrypted)."""
    if isinstance(field, models.JSONField):
        encoded = {}  # id(value) -> (value, text): the value kept alive while its id is a key

        def prep_json(value):
            if value is None:
                return None
            if not value and type(value) in EMPTY_JSON:  # most links, annotations... lists
                return EMPTY_JSON[type(value)]
            hit = encoded.get(id(value))
            if hit is None:
                hit = encoded[id(value)] = (
                    value,
                    json.dumps(field.get_prep_value(value), cls=field.encoder),
                )
            return hit[1]

        return prep_json
    if isinstance(field, (models.DateTimeField, EncryptedTextField, CredentialURLField)):
        return lambda value: field.get_db_prep_save(value, conn)
    return None


def upsert(model, rows, *, key: str, casts: dict[str, str] | None = None) -> None:
    """Insert plain rows or, for a ``key`` already there, replace the row's other columns
    (PostgreSQL ``INSERT … ON CONFLICT (key) DO UPDATE``; elsewhere ``bulk_create`` with
    ``update_conflicts``). Two transactions writing the same key wait for each other instead
    of one failing on the unique key. ``casts``: {attname: SQL type} for values sent as text."""
    if not rows:
        return
    fields = [f for f in model._meta.concrete_fields]
    if connection.vendor != "postgresql":
        names = [f.name for f in fields if f.attname != key and not f.primary_key]
        model.objects.bulk_create(
            [model(**r) for r in rows],
            batch_size=BATCH,
            update_conflicts=True,
            unique_fields=[model._meta.get_field(key.removesuffix("_id")).name],
            update_fields=names,
        )
        return
    conn = connections[DEFAULT_DB_ALIAS]
    qn = conn.ops.quote_name
    casts = casts or {}
    holders = ", ".join(f"%s::{casts[f.attname]}" if f.attname in casts else "%s" for f in fields)
    updates = ", ".join(
        f"{qn(f.column)} = EXCLUDED.{qn(f.column)}" for f in fields if f.attname != key
    )
    key_column = model._meta.get_field(key.removesuffix("_id")).column
    others = [qn(f.column) for f in fields if f.attname != key]
    # a row that would not change is left alone (still locked): no dead tuple, no index entry,
    # no re-TOASTed documents (this PostgreSQL runs without autovacuum)
    unchanged = (
        f"({', '.join('t.' + c for c in others)}) IS DISTINCT FROM "
        f"({', '.join('EXCLUDED.' + c for c in others)})"
    )
    sql = (
        f"INSERT INTO {qn(model._meta.db_table)} AS t "
        f"({', '.join(qn(f.column) for f in fields)}) "
        f"VALUES ({holders}) ON CONFLICT ({qn(key_column)}) DO UPDATE SET {updates} "
        f"WHERE {unchanged}"
    )
    params = [
        [
            r.get(f.attname) if f.attname in casts else f.get_db_prep_save(r.get(f.attname), conn)
            for f in fields
        ]
        for r in rows
    ]
    with conn.cursor() as cursor:
        for start in range(0, len(params), BATCH):
            cursor.executemany(sql, params[start : start + BATCH])
