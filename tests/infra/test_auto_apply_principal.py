"""An auto-apply acts as the run's starter (``portal.principal``), never as the system: a
starter who may no longer apply leaves the plan awaiting a confirmation, and the log says why.
Real Terraform, in-process (the code the Celery task calls)."""

import pytest
from django.utils import timezone

from infra import runner, services
from infra.models import RunStatus, TerraformRun
from portal.actors import Actor
from portal.models import ApiToken, AuditEvent
from tests.infra.conftest import log_text

pytestmark = pytest.mark.django_db

MAIN_TF = 'output "hello" {\n  value = "world"\n}\n'


def _plan(ws, actor):
    run = services.queue_run(ws, actor=actor)
    assert run.status == RunStatus.PENDING
    runner.execute_plan(run.pk)
    return TerraformRun.objects.get(pk=run.pk)


def test_auto_apply_as_a_token_that_may_apply(ws_root, make_workspace, squad):
    ws = make_workspace(slug="auto", files={"main.tf": MAIN_TF}, variables=False, auto_apply=True)
    token, _ = ApiToken.generate(squad=squad, name="tf-bot", scopes=["infra:apply"])
    run = _plan(ws, Actor(token=token))
    assert (run.started_by_kind, run.started_by_token_id) == ("token", token.pk)
    assert run.status == RunStatus.APPLIED, (run.error, log_text(run))
    assert run.confirmed_by == "auto-apply as token:tf-bot@" + squad.slug
    ev = AuditEvent.objects.get(action="infra.run.apply", target_id=str(run.pk))
    assert ev.actor_token_id == token.pk  # the token acted, not the system


@pytest.mark.parametrize("what", ["revoked", "expired", "deleted"])
def test_auto_apply_refused_when_the_token_can_no_longer_apply(
    ws_root, make_workspace, squad, what
):
    ws = make_workspace(slug="auto", files={"main.tf": MAIN_TF}, variables=False, auto_apply=True)
    token, _ = ApiToken.generate(squad=squad, name="tf-bot", scopes=["infra:apply"])
    run = services.queue_run(ws, actor=Actor(token=token))
    if what == "deleted":
        token.delete()
    else:
        field = "revoked_at" if what == "revoked" else "expires_at"
        ApiToken.objects.filter(pk=token.pk).update(**{field: timezone.now()})
    runner.execute_plan(run.pk)
    run = TerraformRun.objects.get(pk=run.pk)
    assert run.status == RunStatus.PLANNED, run.error  # waits for a person to confirm
    text = log_text(run)
    assert "auto-apply skipped" in text and f"was {what}" in text.replace(
        "has expired", "was expired"
    )
    assert not AuditEvent.objects.filter(action="infra.run.apply", target_id=str(run.pk)).exists()


def test_auto_apply_refused_for_a_person_who_left_the_squad(ws_root, make_workspace, alice):
    from squads.models import Membership

    ws = make_workspace(slug="auto", files={"main.tf": MAIN_TF}, variables=False, auto_apply=True)
    run = services.queue_run(ws, actor=Actor(user=alice))
    Membership.objects.filter(person__user=alice).delete()
    runner.execute_plan(run.pk)
    run = TerraformRun.objects.get(pk=run.pk)
    assert run.status == RunStatus.PLANNED
    assert "Only members of the owning squad and org admins" in log_text(run)


def test_a_webhook_principal_acts_for_the_owning_squad_only(squad, other_squad):
    from portal.errors import Forbidden
    from portal.principal import actor_for, started_by

    push = Actor(door="webhook", system_name="github:octocat")
    fields = started_by(push)
    assert fields["started_by_kind"] == "webhook"
    job = TerraformRun(started_by_kind="webhook", started_by_name="github:octocat")
    actor = actor_for(job, squad=squad, door="worker")
    assert actor.can("infra:apply", squad) and not actor.can("infra:apply", other_squad)
    assert not actor.is_admin
    with pytest.raises(Forbidden, match="Only members"):
        actor.require("infra:apply", other_squad, "applying")
    # an unowned thing: nobody's squad, so not everything
    assert not actor_for(job, squad=None, door="worker").can("infra:apply", None)
    with pytest.raises(Forbidden, match="records no principal"):
        actor_for(TerraformRun(), squad=squad, door="worker")
