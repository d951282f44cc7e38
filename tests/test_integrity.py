"""Issue 14, "Integrity and limits": findings of the security assessment, one test each.

- a squad linked other squads' services to its Terraform workspace (feeding their drift rule);
- ``is_staff`` alone made someone an org admin;
- Django admin edits bypassed the audit log;
- an ANSI escape with 5,000 digits made a run page 500 for everyone;
- a replayed (old) alert-channel signature must be refused.
"""

import time

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from infra.models import Workspace
from pipelines import ansi
from portal import outbound
from portal.actors import Actor
from portal.errors import Forbidden
from portal.models import AuditEvent
from tests.conftest import PASSWORD, client_for, token_client
from tests.factories import ServiceFactory, UserFactory

pytestmark = pytest.mark.django_db

TF = 'output "x" {\n  value = 1\n}\n'


# --- a workspace links only its own squad's services ------------------------------------------
def test_api_refuses_linking_another_squads_service(alice, squad, other_squad):
    ServiceFactory(slug="mine", owner=squad)
    ServiceFactory(slug="theirs", owner=other_squad)
    c = client_for(alice)
    body = {"slug": "edge", "name": "Edge", "owner": "playback", "files": {"main.tf": TF}}
    r = c.post("/api/v1/workspaces/", {**body, "services": ["mine", "theirs"]}, format="json")
    assert r.status_code == 400, r.content
    assert "theirs" in r.json()["errors"]["services"][0]
    assert not Workspace.objects.exists()  # nothing half-made
    r = c.post("/api/v1/workspaces/", {**body, "services": ["mine"]}, format="json")
    assert r.status_code == 201, r.content
    r = c.patch("/api/v1/workspaces/edge/", {"services": ["mine", "theirs"]}, format="json")
    assert r.status_code == 400 and "theirs" in r.json()["errors"]["services"][0]
    assert list(Workspace.objects.get().services.values_list("slug", flat=True)) == ["mine"]


def test_bot_token_cannot_link_another_squads_service(squad, other_squad, make_token):
    ServiceFactory(slug="theirs", owner=other_squad)
    c = token_client(make_token(squad, ["infra:apply"]))
    body = {"slug": "edge", "name": "Edge", "owner": "playback", "files": {"main.tf": TF}}
    r = c.post("/api/v1/workspaces/", {**body, "services": ["theirs"]}, format="json")
    assert r.status_code == 400 and "services" in r.json()["errors"]


def test_moving_a_workspace_keeps_the_rule(admin_user, squad, other_squad):
    """Even an org admin cannot leave a workspace linked to services its new owner lacks."""
    mine = ServiceFactory(slug="mine", owner=squad)
    ws = Workspace.objects.create(slug="edge", name="Edge", owner=squad, files={"main.tf": TF})
    ws.services.set([mine])
    r = client_for(admin_user).patch("/api/v1/workspaces/edge/", {"owner": "search"}, format="json")
    assert r.status_code == 400 and "mine" in r.json()["errors"]["services"][0]
    ws.refresh_from_db()
    assert ws.owner == squad


def test_form_offers_and_accepts_only_own_services(alice, squad, other_squad):
    ServiceFactory(slug="mine", owner=squad)
    theirs = ServiceFactory(slug="theirs", owner=other_squad)
    c = client_for(alice)
    page = c.get(reverse("infra:workspace_new")).content.decode()
    assert 'value="mine"' in page and 'value="theirs"' not in page
    data = {
        "slug": "edge",
        "name": "Edge",
        "owner": "playback",
        "source": "stored",
        "main_tf": TF,
        "services": ["mine", theirs.slug],
        "drift_checks": "on",
    }
    r = c.post(reverse("infra:workspace_new"), data)
    assert r.status_code == 200 and not Workspace.objects.exists()
    assert "services" in r.context["form"].errors


# --- org admin only by an explicit role ---------------------------------------------------------
def test_is_staff_alone_is_not_an_org_admin(squad):
    staff = UserFactory(username="staffer", is_staff=True, is_superuser=False)
    assert not Actor(user=staff).is_admin
    with pytest.raises(Forbidden):
        Actor(user=staff).require_admin("force-unlock a workspace")
    assert not Actor(user=staff).can("infra:apply", squad)
    superuser = UserFactory(username="root", is_staff=True, is_superuser=True)
    assert Actor(user=superuser).is_admin


def test_staff_without_superuser_is_refused_admin_actions(squad):
    staff = UserFactory(username="staffer", is_staff=True, is_superuser=False)
    Workspace.objects.create(slug="edge", name="Edge", owner=squad, files={"main.tf": TF})
    c = client_for(staff)
    assert c.get("/api/v1/me/").json()["is_admin"] is False
    assert c.post("/api/v1/workspaces/edge/force-unlock").status_code == 403
    r = c.patch("/api/v1/workspaces/edge/", {"description": "mine now"}, format="json")
    assert r.status_code == 403


# --- Django admin changes are audited ---------------------------------------------------------
def test_admin_site_add_change_delete_are_audited(admin_user, squad):
    c = Client()
    assert c.login(username="admin", password=PASSWORD)
    r = c.post(reverse("admin:auth_group_add"), {"name": "auditors"})
    assert r.status_code == 302, r.content[:500]
    group = Group.objects.get(name="auditors")
    r = c.post(reverse("admin:auth_group_change", args=[group.pk]), {"name": "auditors-2"})
    assert r.status_code == 302
    r = c.post(reverse("admin:auth_group_delete", args=[group.pk]), {"post": "yes"})
    assert r.status_code == 302 and not Group.objects.exists()
    events = list(AuditEvent.objects.filter(door="admin").order_by("id"))
    assert [e.action for e in events] == [
        "admin.auth.group.add",
        "admin.auth.group.change",
        "admin.auth.group.delete",
    ]
    assert {e.actor for e in events} == {"admin"} and {e.target_id for e in events} == {
        str(group.pk)
    }
    assert events[1].data["message"]  # what changed, as the admin's own history says


def test_admin_bulk_delete_is_audited_per_object(admin_user):
    c = Client()
    assert c.login(username="admin", password=PASSWORD)
    groups = [Group.objects.create(name=f"g{i}") for i in range(3)]
    r = c.post(
        reverse("admin:auth_group_changelist"),
        {
            "action": "delete_selected",
            "_selected_action": [g.pk for g in groups],
            "post": "yes",
        },
    )
    assert r.status_code == 302 and not Group.objects.exists()
    deleted = AuditEvent.objects.filter(door="admin", action="admin.auth.group.delete")
    assert sorted(deleted.values_list("target_repr", flat=True)) == ["g0", "g1", "g2"]


# --- the ANSI parser is bounded ------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "\x1b[" + "9" * 5000 + "m boom",
        "\x1b[1;" + "3" * 100000 + ";31m boom",
        "\x1b[" + ";".join(["1"] * 50000) + "m boom",
    ],
)
def test_ansi_escape_with_huge_numbers_is_dropped_not_a_500(text, monkeypatch):
    """A code longer than MAX_CODE_DIGITS is skipped unparsed: ``int()`` never sees it."""
    converted = []
    monkeypatch.setattr(ansi, "int", lambda s: converted.append(s) or int(s), raising=False)
    out = ansi.to_html(text)
    assert out.endswith(" boom") or out.endswith(" boom</span>")
    assert "9999" not in out
    assert max(map(len, converted), default=0) <= ansi.MAX_CODE_DIGITS
    assert ansi.strip(text) == " boom"


def test_run_page_with_a_5000_digit_escape_renders(alice, squad):
    from tests.pipelines.test_pages import make_run

    service = ServiceFactory(slug="player", owner=squad)
    run = make_run(service, "running", text="before\n\x1b[" + "9" * 5000 + "mafter\n")
    c = client_for(alice)
    r = c.get(run.get_absolute_url())
    assert r.status_code == 200 and "after" in r.content.decode()
    r = c.get(f"/pipelines/runs/{run.pk}/log?offset=0", HTTP_HX_REQUEST="true")
    assert r.status_code in (200, 286) and "after" in r.content.decode()


def test_ansi_colours_still_render():
    assert (
        ansi.to_html("\x1b[1;31mred\x1b[0m ok") == '<span class="ansi-bold ansi-red">red</span> ok'
    )


# --- signed deliveries: a replay of an old signature is refused ----------------------------------
def test_alert_channel_signature_is_timestamped_and_old_ones_are_refused():
    body = b'{"event":"alert.firing"}'
    header = outbound.sign("chan-secret", body)
    fields = dict(p.split("=", 1) for p in header.split(","))
    assert fields["t"].isdigit() and abs(int(fields["t"]) - time.time()) < 60
    assert outbound.verify_signature(body, header, "chan-secret")
    # the same captured header presented 301 s later is a replay
    later = int(fields["t"]) + outbound.MAX_AGE + 1
    assert not outbound.verify_signature(body, header, "chan-secret", now=later)
    assert outbound.verify_signature(body, header, "chan-secret", now=int(fields["t"]) + 10)
    # a signature without a timestamp is refused outright
    assert not outbound.verify_signature(body, f"v1={fields['v1']}", "chan-secret")
