import pytest

from pipelines.models import PipelineRun
from squads.models import Service
from tests.factories import ServiceFactory


@pytest.mark.django_db
def test_demo_seed_is_idempotent(settings, tmp_path, squad):
    from pipelines import demo

    settings.VAR_DIR = tmp_path
    for slug in ("playback-api", "search-api", "payments-gateway"):
        ServiceFactory(slug=slug, owner=squad)
    demo.seed()
    demo.seed()
    assert PipelineRun.objects.count() == 4
    svc = Service.objects.get(slug="payments-gateway")
    assert svc.repository_url == f"file://{tmp_path}/demo-repos/payments-gateway"
    assert (tmp_path / "demo-repos" / "payments-gateway" / "backline.yml").read_text().count(
        "integration"
    ) == 1


def test_demo_specs_are_valid():
    from pipelines.demo import FAILING_STEP, GOOD_SPEC
    from pipelines.spec import parse

    good = parse(GOOD_SPEC.format(slug="x"))
    failing = parse(
        GOOD_SPEC.format(slug="x").replace(
            "      - name: lint\n", FAILING_STEP + "      - name: lint\n"
        )
    )
    assert [s["name"] for _i, _st, s in good.steps()] == ["compile", "unit", "lint", "image"]
    assert "integration" in [s["name"] for _i, _st, s in failing.steps()]
