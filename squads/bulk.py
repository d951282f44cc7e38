"""Bulk writes of plain rows: COPY on PostgreSQL, ``bulk_create`` elsewhere (the Backstage
importer's writer, the stitched read form)."""

from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.utils import timezone

from portal.fields import CredentialURLField, EncryptedTextField

BATCH = 1000


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
    """Insert plain rows (dicts keyed by attname); unspecified columns get the model default
    (the primary key too, unless ``with_pk``). PostgreSQL: one COPY per table; elsewhere:
    bulk_create."""
    if not rows:
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
    # JSON, datetime and encrypted values need adapting (portal.fields: secrets reach the
    # table only encrypted); ints, strings and None go as they are.
    adapted = (models.JSONField, models.DateTimeField, EncryptedTextField, CredentialURLField)
    prep = [isinstance(f, adapted) for f in fields]
    cols = [
        (f.attname, defaults[f.attname], f if p else None)
        for f, p in zip(fields, prep, strict=True)
    ]
    qn = conn.ops.quote_name
    sql = f"COPY {qn(model._meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) FROM STDIN"
    with conn.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for r in rows:
            copy.write_row(
                [
                    f.get_db_prep_save(r.get(name, default), conn) if f else r.get(name, default)
                    for name, default, f in cols
                ]
            )
