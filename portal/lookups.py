"""``field__any=[...]``: membership in a list sent as one array parameter.

``__in`` with 10,000 values makes Django build (and the driver parse) a 10,000-placeholder
statement; on PostgreSQL ``col = ANY(%s)`` sends the list as one array instead, with the same
plan. Other databases get ``__in``. Registered on every field from ``PortalConfig.ready()``.

A list of ints or of strings goes as one array literal (``'{1,2,3}'``, typed by the column it
is compared with), built in C by ``str.join``: the driver's array adapter dumps each element
in Python (a second of an import's 11,550 entities). ``many(values)`` also spares Django its
own walk over every element (resolving each as a possible expression, checking each against
the related model, hashing the list): for the large lists of imports and stitching.
"""

from django.core.exceptions import EmptyResultSet
from django.db import models
from django.db.models.lookups import In

_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"'})


class Many:
    """A list for ``field__any=many(ids)`` that Django passes to the lookup untouched."""

    __slots__ = ("values", "_literal")

    def __init__(self, values):
        self.values = [getattr(v, "pk", v) for v in values]
        self._literal = False

    def __len__(self):
        return len(self.values)

    def literal(self):
        """The PostgreSQL array literal of the values (None when they are not all ints or all
        strings), built once."""
        if self._literal is False:
            self._literal = _array_literal(self.values)
        return self._literal


def many(values) -> Many:
    return values if isinstance(values, Many) else Many(values)


def array_param(values):
    """``values`` as the parameter of a raw ``= ANY(%s)``: their array literal when they are
    all ints or all strings, else the list."""
    values = many(values)
    literal = values.literal()
    return values.values if literal is None else literal


def _array_literal(values):
    types = set(map(type, values))
    if types == {int}:
        return "{" + ",".join(map(str, values)) + "}"
    if types == {str}:
        return '{"' + '","'.join(v.translate(_ESCAPES) for v in values) + '"}'
    return None


class AnyOf(models.Lookup):
    lookup_name = "any"
    prepare_rhs = False

    def get_prep_lookup(self):
        return many(self.rhs)

    def as_sql(self, compiler, connection):
        return In(self.lhs, self.rhs.values).as_sql(compiler, connection)

    def as_postgresql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        if not self.rhs.values:
            raise EmptyResultSet
        literal = self.rhs.literal()
        return f"{lhs} = ANY(%s)", (*lhs_params, self.rhs.values if literal is None else literal)


def register() -> None:
    models.Field.register_lookup(AnyOf)
    models.ForeignObject.register_lookup(AnyOf)  # related fields list their own lookups
