"""Terraform runs in the sandbox, on a real worker: what a workspace's configuration can read,
and what it may declare.

- ``file("/proc/self/environ")`` shows terraform's own clean environment, never the worker's;
- ``fileset("/", "**")`` finds no ``var/``, no Backline source, no other workspace;
- ``terraform_remote_state`` on another workspace's state fails (the file is not there; in
  PostgreSQL, the workspace's role has no right on the other's schema);
- PostgreSQL is reachable only through the run's state socket and only as the workspace's own
  role (the host's loopback, where it trusts postgres, is not in the isolated network);
- ``local-exec`` / ``remote-exec`` provisioners are refused at plan unless an org admin allows
  them for the workspace; only an org admin lets a workspace's code configure its backend.
No value leaks into outputs, logs or the API.
"""

import json
from pathlib import Path

import pytest
from django.conf import settings
from django.db import transaction

from infra import runner, services, tfstate
from infra.models import RunStatus, TerraformRun, Workspace
from portal.actors import Actor
from tests.conftest import ROOT, client_for
from tests.infra.conftest import log_text, write_state
from tests.infra.test_worker import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

OTHER_SECRET = "other-squads-output-5d1e"
ENVIRON = """
output "env" {
  value = replace(file("/proc/self/environ"), "\\u0000", "\\n")
}
"""
# "/" with "**" everywhere but the read-only system (/usr alone is ~120k files) and the
# pseudo-filesystems: every other top-level folder, and where var/, the source and the
# workspace root are outside
FILESET = """
output "files" {
  value = sort(concat(
    tolist(fileset("/", "*")),
    tolist(fileset("/", "{work,tmp,var,run,root,home,opt,srv,mnt,media,boot,farm}/**")),
    %s
  ))
}
output "system_files" {
  value = length([for f in fileset("/", "usr/bin/*") : f])
}
"""
REMOTE_STATE = """
data "terraform_remote_state" "other" {
  backend = "local"
  config = {
    path = %s
  }
}
output "stolen" {
  value = data.terraform_remote_state.other.outputs
}
"""
LOCAL_EXEC = """
resource "terraform_data" "run" {
  provisioner "local-exec" {
    command = "cat /proc/1/environ"
  }
}
"""
REMOTE_EXEC_JSON = {
    "resource": {
        "terraform_data": {
            "run": {
                "provisioner": [
                    {"remote-exec": {"inline": ["id"], "connection": {"host": "127.0.0.1"}}}
                ]
            }
        }
    }
}


def workspace(slug, owner, files, **kw):
    from tests.infra.conftest import terraform_binary

    return Workspace.objects.create(
        slug=slug, name=slug, owner=owner, files=files, terraform_bin=terraform_binary(), **kw
    )


def finished(run, timeout=90):
    busy = [RunStatus.PENDING, RunStatus.PLANNING, RunStatus.CONFIRMED, RunStatus.APPLYING]
    if run.workspace.auto_apply:
        busy.append(RunStatus.PLANNED)  # auto-apply follows

    def over():
        row = TerraformRun.objects.get(pk=run.pk)
        return row if row.status not in busy else None

    return wait_for(over, timeout, f"run {run.pk} to finish")


def everything_shown(alice, ws, run) -> str:
    """Log, error, diagnostics, outputs, and the workspace and run as the API shows them."""
    c = client_for(alice)
    ws.refresh_from_db()
    return "\n".join(
        [
            log_text(run),
            run.error,
            json.dumps(run.diagnostics),
            json.dumps(ws.outputs),
            c.get(f"/api/v1/workspaces/{ws.slug}/").content.decode(),
            c.get(f"/api/v1/workspaces/{ws.slug}/runs").content.decode(),
        ]
    )


def test_file_and_fileset_see_only_the_sandbox(worker_root, squad, alice, infra_worker):
    worker_env = Path(f"/proc/{infra_worker.proc.pid}/environ").read_text(errors="replace")
    assert "DATABASE_URL=" in worker_env  # what an unsandboxed terraform would read
    roots = "\n".join(
        f'[for f in fileset("{p}", "**") : "{p}/${{f}}"],'
        for p in (settings.VAR_DIR, ROOT, settings.WORKSPACE_ROOT)
    )
    ws = workspace("peek", squad, {"main.tf": ENVIRON + FILESET % roots}, auto_apply=True)
    other = runner.state_path(workspace("neighbour", squad, {"main.tf": ""}))
    write_state(other, {"secret": OTHER_SECRET})
    run = finished(services.queue_run(ws, actor=Actor(user=alice)))
    assert run.status == RunStatus.APPLIED, (run.error, log_text(run))
    ws.refresh_from_db()
    env = ws.outputs["env"]["value"]
    assert "TF_IN_AUTOMATION=1" in env  # it did read its own environment
    for name in ("DATABASE_URL", "SECRET_KEY", "REDIS_URL", "DJANGO_SETTINGS_MODULE"):
        assert name not in env
    files = ws.outputs["files"]["value"]
    assert ws.outputs["system_files"]["value"] > 10  # the system is there, read-only
    var, source = Path(settings.VAR_DIR), ROOT
    for f in files:
        path = Path(f) if f.startswith("/") else Path("/") / f
        assert not path.is_relative_to(var) and not path.is_relative_to(source), f
        assert "ws-" not in f or f"ws-{ws.state_key}/" in f, f  # no other workspace
    assert not any(f.endswith("manage.py") or "backline.sqlite3" in f for f in files)
    assert any(f.endswith("/src/main.tf") for f in files)  # its own configuration is there
    shown = everything_shown(alice, ws, run)
    assert OTHER_SECRET not in shown and "DATABASE_URL" not in shown
    # its own state role's password is in its environment (pg backend), masked in what is shown
    assert "PGPASSWORD=***" in env and tfstate.role_password(ws) not in shown


def test_remote_state_of_another_workspace_is_not_there(worker_root, squad, other_squad, alice):
    theirs = workspace("theirs", other_squad, {"main.tf": ""})
    their_state = write_state(runner.state_path(theirs), {"secret": OTHER_SECRET})
    assert their_state.exists()
    ws = workspace("thief", squad, {"main.tf": REMOTE_STATE % json.dumps(str(their_state))})
    run = finished(services.queue_run(ws, actor=Actor(user=alice)))
    assert run.status == RunStatus.ERRORED
    assert "terraform plan failed" in run.error
    shown = everything_shown(alice, ws, run)
    assert OTHER_SECRET not in shown
    assert "no such file" in shown.lower() or "unable to find" in shown.lower(), shown


PG_REMOTE_STATE = """
data "terraform_remote_state" "other" {
  backend = "pg"
  config = {
    conn_str             = %s
    schema_name          = %s
    skip_schema_creation = true
    skip_table_creation  = true
    skip_index_creation  = true
  }
}
output "stolen" {
  value = data.terraform_remote_state.other.outputs
}
"""


def test_remote_state_of_another_workspace_in_pg_is_refused(
    worker_root, squad, other_squad, alice, bob
):
    """The thief knows the other workspace's schema and uses its own role (the password is in
    its environment): PostgreSQL refuses the schema. No value anywhere."""
    theirs = workspace(
        "theirs",
        other_squad,
        {"main.tf": f'output "secret" {{\n  value = "{OTHER_SECRET}"\n}}\n'},
        auto_apply=True,
    )
    assert theirs.backend == Workspace.Backend.PG
    done = finished(services.queue_run(theirs, actor=Actor(user=bob)))
    assert done.status == RunStatus.APPLIED, done.error or log_text(done)
    ws = workspace("thief", squad, {"main.tf": ""})
    ws.files = {
        "main.tf": PG_REMOTE_STATE
        % (json.dumps(tfstate.terraform_conn_str(ws)), json.dumps(tfstate.schema_name(theirs)))
    }
    ws.save()
    run = finished(services.queue_run(ws, actor=Actor(user=alice)))
    assert run.status == RunStatus.ERRORED
    shown = everything_shown(alice, ws, run)
    assert OTHER_SECRET not in shown
    assert "permission denied for schema" in shown, shown
    assert tfstate.role_password(ws) not in shown


def test_terraform_reaches_postgresql_only_as_its_own_role(
    worker_root, squad, other_squad, alice, bob
):
    """PostgreSQL trusts 127.0.0.1 on this machine (postgres, no password). From the sandbox
    the host's loopback is not there (nor through slirp's gateway), and the state socket relays
    only the workspace's own role: no superuser, no other workspace's role."""
    theirs = workspace(
        "theirs",
        other_squad,
        {"main.tf": f'output "secret" {{\n  value = "{OTHER_SECRET}"\n}}\n'},
        auto_apply=True,
    )
    done = finished(services.queue_run(theirs, actor=Actor(user=bob)))
    assert done.status == RunStatus.APPLIED, done.error or log_text(done)
    ws = workspace("thief", squad, {"main.tf": ""})
    db = tfstate.target().dbname
    own = tfstate.terraform_conn_str(ws)
    assert "host=/run/backline-pg" in own and "127.0.0.1" not in own
    only_own = "only the workspace's own state role"
    attempts = {
        "trust on loopback": (f"postgres://postgres@127.0.0.1:5432/{db}?sslmode=disable", None),
        "gateway": (f"postgres://postgres@10.0.2.2:5432/{db}?sslmode=disable", None),
        "superuser by socket": (own.replace(tfstate.role_name(ws), "postgres"), only_own),
        "their role": (own.replace(tfstate.role_name(ws), tfstate.role_name(theirs)), only_own),
        "other database": (own.replace(f"/{db}?", "/postgres?"), only_own),
    }
    for what, (conn_str, refusal) in attempts.items():
        ws.files = {
            "main.tf": PG_REMOTE_STATE
            % (json.dumps(conn_str), json.dumps(tfstate.schema_name(theirs)))
        }
        ws.save()
        run = finished(services.queue_run(ws, actor=Actor(user=alice)))
        assert run.status == RunStatus.ERRORED, (what, log_text(run))
        shown = everything_shown(alice, ws, run)
        assert OTHER_SECRET not in shown, what
        if refusal is None:
            assert "connection refused" in shown or "network is unreachable" in shown, shown
        else:
            assert refusal in shown, (what, shown)


@pytest.mark.parametrize(
    "files,kind",
    [
        ({"main.tf": LOCAL_EXEC}, "local-exec"),
        ({"main.tf.json": json.dumps(REMOTE_EXEC_JSON)}, "remote-exec"),
    ],
)
def test_exec_provisioners_are_refused_at_plan(worker_root, squad, alice, files, kind):
    ws = workspace("prov", squad, files)
    run = finished(services.queue_run(ws, actor=Actor(user=alice)))
    assert run.status == RunStatus.ERRORED
    assert kind in run.error and "only an org admin can allow them" in run.error
    assert "Not planned" in log_text(run)
    assert not runner.plan_file(run).exists()


def test_a_commented_out_provisioner_is_not_refused(worker_root, squad, alice):
    text = '# provisioner "local-exec" {\n/* provisioner "remote-exec" { */\n'
    ws = workspace("quiet", squad, {"main.tf": text + 'resource "terraform_data" "ok" {}\n'})
    run = finished(services.queue_run(ws, actor=Actor(user=alice)))
    assert run.status == RunStatus.PLANNED, run.error or log_text(run)


def test_an_admin_allows_provisioners_a_member_cannot(worker_root, squad, alice, admin_user):
    ws = workspace("allowed", squad, {"main.tf": LOCAL_EXEC})
    member = client_for(alice)
    r = member.patch(f"/api/v1/workspaces/{ws.slug}/", {"allow_provisioners": True}, "json")
    assert r.status_code == 403 and "org admins" in r.json()["message"], r.content
    assert not Workspace.objects.get(pk=ws.pk).allow_provisioners
    r = client_for(admin_user).patch(
        f"/api/v1/workspaces/{ws.slug}/", {"allow_provisioners": True}, "json"
    )
    assert r.status_code == 200, r.content
    run = finished(services.queue_run(ws, actor=Actor(user=alice)))
    assert run.status == RunStatus.PLANNED, run.error or log_text(run)


def test_only_an_admin_lets_the_code_configure_the_backend(ws_root, squad, alice, admin_user):
    body = {"slug": "mine", "name": "Mine", "owner": squad.slug, "files": {"main.tf": ""}}
    member = client_for(alice)
    r = member.post("/api/v1/workspaces/", {**body, "backend": "configured"}, format="json")
    assert r.status_code == 403 and "backend" in r.json()["message"], r.content
    assert not Workspace.objects.filter(slug="mine").exists()
    assert member.post("/api/v1/workspaces/", body, format="json").status_code == 201
    r = member.patch("/api/v1/workspaces/mine/", {"backend": "configured"}, format="json")
    assert r.status_code == 403, r.content
    assert Workspace.objects.get(slug="mine").backend == "pg"  # the default on PostgreSQL
    admin = client_for(admin_user)
    r = admin.patch("/api/v1/workspaces/mine/", {"backend": "configured"}, format="json")
    assert r.status_code == 200, r.content
    # the member may still edit the workspace otherwise, and move it back to local state
    r = member.patch("/api/v1/workspaces/mine/", {"description": "x"}, format="json")
    assert r.status_code == 200, r.content
    r = member.patch("/api/v1/workspaces/mine/", {"backend": "local"}, format="json")
    assert r.status_code == 200 and Workspace.objects.get(slug="mine").backend == "local"
    r = member.patch("/api/v1/workspaces/mine/", {"backend": "pg"}, format="json")
    assert r.status_code == 200 and Workspace.objects.get(slug="mine").backend == "pg"
    key = Workspace.objects.get(slug="mine").state_key
    r = member.patch("/api/v1/workspaces/mine/", {"state_key": "1"}, format="json")
    assert Workspace.objects.get(slug="mine").state_key == key  # not anybody's to choose


def in_process_plan(ws, alice):
    """Plan in this process with this test's settings: the task for the module's worker is sent
    only when the transaction commits, and by then this process has claimed the run."""
    with transaction.atomic():
        run = services.queue_run(ws, actor=Actor(user=alice))
        runner.execute_plan(run.pk)
    return run


def test_sandbox_off_warns_in_the_log_and_on_the_page(ws_root, squad, alice, settings):
    settings.SANDBOX = "none"
    ws = workspace("bare", squad, {"main.tf": 'output "x" {\n  value = 1\n}\n'})
    run = in_process_plan(ws, alice)
    run.refresh_from_db()
    assert run.status == RunStatus.PLANNED, run.error or log_text(run)
    assert "Sandbox off (BACKLINE_SANDBOX=none)" in log_text(run)
    assert 'id="sandbox-off"' in client_for(alice).get(f"/infra/runs/{run.pk}/").content.decode()
    settings.SANDBOX = "bwrap"
    assert (
        'id="sandbox-off"' not in client_for(alice).get(f"/infra/runs/{run.pk}/").content.decode()
    )


def test_a_missing_bubblewrap_errors_the_plan(ws_root, squad, alice, settings):
    settings.BWRAP_BIN = "/nonexistent/bwrap"
    ws = workspace("nobwrap", squad, {"main.tf": 'output "x" {\n  value = 1\n}\n'})
    run = in_process_plan(ws, alice)
    run.refresh_from_db()
    assert run.status == RunStatus.ERRORED
    assert "bubblewrap" in run.error and "not installed" in run.error
