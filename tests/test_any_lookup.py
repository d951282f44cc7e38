"""``field__any=``: the rows whose value is in the list, whatever the strings hold (quotes,
backslashes, commas, braces, spaces, the word NULL), given as a list, a ``many()`` or model
instances; an empty list matches nothing."""

import pytest

from portal.lookups import array_param, many
from squads.models import Service, Squad, Tribe

pytestmark = pytest.mark.django_db

AWKWARD = ['a"b', "c\\d", "e,f", "{g}", "h i", "NULL", "", "j'k"]


def test_strings_match_exactly():
    tribe = Tribe.objects.create(slug="t", name="T")
    for n, name in enumerate(AWKWARD):
        Squad.objects.create(slug=f"s{n}", name=name, tribe=tribe)
    Squad.objects.create(slug="other", name="a", tribe=tribe)
    for values in (AWKWARD, many(AWKWARD), AWKWARD[:1]):
        got = set(Squad.objects.filter(name__any=values).values_list("name", flat=True))
        assert got == set(values.values if hasattr(values, "values") else values)
    assert not Squad.objects.filter(name__any=[]).exists()
    assert not Squad.objects.filter(name__any=many([])).exists()


def test_ints_and_instances():
    tribe = Tribe.objects.create(slug="t", name="T")
    squads = [Squad.objects.create(slug=f"s{n}", name=f"S{n}", tribe=tribe) for n in range(5)]
    ids = [s.pk for s in squads[:3]]
    assert set(Squad.objects.filter(pk__any=many(ids)).values_list("pk", flat=True)) == set(ids)
    assert Squad.objects.filter(pk__any=squads[3:]).count() == 2  # instances: their pks
    Service.objects.create(slug="svc", name="Svc", owner=squads[0])
    assert list(Service.objects.filter(owner__slug__any=many(["s0", "s1"]))) == [
        Service.objects.get(slug="svc")
    ]


def test_array_param():
    assert array_param([3, 1, 2]) == "{3,1,2}"
    assert array_param(['a"b', "c\\d"]) == '{"a\\"b","c\\\\d"}'
    assert array_param([1, "x"]) == [1, "x"]
