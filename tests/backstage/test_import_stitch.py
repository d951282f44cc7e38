"""The read form an import stitches is the one a rebuild from scratch produces: the import's
bulk path (COPY, shared scorecard documents, the collector paused) changes how it is written,
never what."""

import gc
import json

import pytest
from django.db import connection

from portal.actors import Actor
from squads import backstage, scorecards, stitch
from squads.backstage.generate import generate_catalog
from squads.models import Service, ServiceView


def _read_forms():
    """service id -> every column of its ServiceView row (the vector as text)."""
    cols = [f.column for f in ServiceView._meta.concrete_fields]
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT {', '.join(cols).replace('document', 'document::text')} "
            "FROM squads_serviceview ORDER BY service_id"
        )
        return {row[0]: dict(zip(cols, row, strict=True)) for row in cur.fetchall()}


def _assert_same_as_a_rebuild():
    imported = _read_forms()
    assert stitch.restitch_all() == len(imported)
    rebuilt = _read_forms()
    assert imported.keys() == rebuilt.keys()
    different = [pk for pk in rebuilt if imported[pk] != rebuilt[pk]]
    assert not different, (imported[different[0]], rebuilt[different[0]])
    return imported


def test_imported_read_forms_equal_a_restitch_from_scratch(db):
    first = backstage.import_catalog([("gen.yaml", generate_catalog(1500))], Actor.command())
    assert first.counts["component"]["created"] > stitch.COPY_FROM  # the COPY path
    forms = _assert_same_as_a_rebuild()
    assert all(f["document"] for f in forms.values())
    cards = {str(f["scorecard"]) for f in forms.values()}
    assert 1 < len(cards) < len(forms)  # documents shared, yet each service's own result
    for service in Service.objects.order_by("pk")[::25]:  # each as evaluated on its own
        card = scorecards.evaluate_one(service).as_dict()
        assert json.loads(forms[service.pk]["scorecard"]) == card
    # another seed: lifecycles, owners, dependencies, tags and APIs change for most services
    again = backstage.import_catalog(
        [("gen.yaml", generate_catalog(1500, seed=2))], Actor.command()
    )
    assert again.counts["component"]["updated"] > stitch.COPY_FROM
    _assert_same_as_a_rebuild()


def test_the_collector_is_back_after_an_import_that_fails(db):
    assert gc.isenabled()
    bad = "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: x}\nspec: 3\n"
    with pytest.raises(backstage.ImportFailed):
        backstage.import_catalog([("bad.yaml", bad)], Actor.command())
    assert gc.isenabled()
    assert not ServiceView.objects.exists()
    gc.disable()
    try:  # an import never turns on a collector its caller had off
        backstage.import_catalog([("gen.yaml", generate_catalog(40))], Actor.command())
        assert not gc.isenabled()
    finally:
        gc.enable()
