"""``field__any=[...]``: membership in a list sent as one array parameter.

``__in`` with 10,000 values makes Django build (and the driver parse) a 10,000-placeholder
statement; on PostgreSQL ``col = ANY(%s)`` sends the list as one array instead, with the same
plan. Other databases get ``__in``. Registered on every field from ``PortalConfig.ready()``.
"""

from django.core.exceptions import EmptyResultSet
from django.db import models
from django.db.models.lookups import In


class AnyOf(models.Lookup):
    lookup_name = "any"
    prepare_rhs = False

    def get_prep_lookup(self):
        return [getattr(v, "pk", v) for v in self.rhs]

    def as_sql(self, compiler, connection):
        return In(self.lhs, self.rhs).as_sql(compiler, connection)

    def as_postgresql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        values = list(self.rhs)
        if not values:
            raise EmptyResultSet
        return f"{lhs} = ANY(%s)", (*lhs_params, values)


def register() -> None:
    models.Field.register_lookup(AnyOf)
    models.ForeignObject.register_lookup(AnyOf)  # related fields list their own lookups
