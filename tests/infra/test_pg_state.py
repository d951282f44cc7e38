"""Terraform state on PostgreSQL (the pg backend), in-process with the machine's Terraform 1.11:
a schema and a login role per workspace, a state identity that is never reused, and what the
role cannot reach. The two-worker test is in test_pg_workers.py."""

import json
import shutil
from types import SimpleNamespace

import psycopg
import pytest
from django.db import connection
from psycopg import sql

from infra import runner, services, tfstate
from infra.models import RunStatus, SavedPlan, TerraformRun, Workspace
from portal.actors import Actor
from tests.infra.conftest import SECRET, log_text, state_document
from tests.infra.test_runs import apply, plan

pytestmark = pytest.mark.django_db

DATA = 'resource "terraform_data" "%s" {\n  input = "%s"\n}\noutput "%s" {\n  value = "%s"\n}\n'


def admin():
    return psycopg.connect(**tfstate.target().admin_conninfo(), autocommit=True)


def as_role(ws):
    """A connection as the workspace's own state role, with its own password."""
    tgt = tfstate.target()
    return psycopg.connect(
        host=tgt.host,
        port=tgt.port,
        dbname=tgt.dbname,
        user=tfstate.role_name(ws),
        password=tfstate.role_password(ws),
        autocommit=True,
    )


def new_workspace(squad, alice, slug, files, **kw):
    from tests.infra.conftest import terraform_binary

    ws = services.create_workspace(
        squad, actor=Actor(user=alice), slug=slug, name=slug, files=files, **kw
    )
    Workspace.objects.filter(pk=ws.pk).update(terraform_bin=terraform_binary())
    ws.refresh_from_db()
    return ws


def applied(ws, alice):
    run = plan(ws, alice)
    assert run.status == RunStatus.PLANNED, run.error or log_text(run)
    run = apply(run, alice)
    assert run.status == RunStatus.APPLIED, run.error or log_text(run)
    return run


def test_pg_is_the_default_and_state_outputs_and_no_local_file(ws_root, squad, alice):
    ws = new_workspace(squad, alice, "pgdefault", {"main.tf": DATA % ("a", "one", "o", "one")})
    assert ws.backend == Workspace.Backend.PG
    assert len(ws.state_key) == 32
    run = applied(ws, alice)
    ws.refresh_from_db()
    assert ws.outputs["o"]["value"] == "one"
    doc = state_document(ws)
    assert [r["type"] for r in doc["resources"]] == ["terraform_data"]
    assert (ws.state_serial, ws.state_lineage) == (doc["serial"], doc["lineage"])
    assert not runner.state_path(ws).exists()  # nothing on this worker's disk
    # the override file names the role and the schema; no password in it, nor in the log
    override = (runner.run_dir(run) / "src" / "zz_backline_backend_override.tf").read_text()
    assert tfstate.schema_name(ws) in override and tfstate.role_name(ws) in override
    password = tfstate.role_password(ws)
    assert password not in override and password not in log_text(run)
    for path in runner.ws_root(ws).rglob("*"):
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path
    assert not SavedPlan.objects.filter(run=run).exists()  # spent once applied


def test_a_new_workspace_never_sees_an_old_workspaces_state(ws_root, squad, alice):
    """A fresh (or restored) database hands out an old workspace's id again: the new
    workspace must start from empty state, not plan to destroy the old one's resources."""
    old = new_workspace(squad, alice, "old", {"main.tf": DATA % ("old", "x", "o", "x")})
    applied(old, alice)
    old_id, old_key, old_doc = old.pk, old.state_key, state_document(old)
    local_old = new_workspace(
        squad, alice, "oldlocal", {"main.tf": DATA % ("old", "y", "o", "y")}, backend="local"
    )
    applied(local_old, alice)
    local_id = local_old.pk
    assert runner.state_path(local_old).exists()
    # the database forgets both (their state stays where it was) and hands their ids out again
    Workspace.objects.filter(pk__in=[old_id, local_id]).delete()
    for reuse_id, backend in ((old_id, "pg"), (local_id, "local")):
        with connection.cursor() as cur:
            cur.execute(
                "SELECT setval(pg_get_serial_sequence('infra_workspace', 'id'), %s, false)",
                [reuse_id],
            )
        new = new_workspace(
            squad,
            alice,
            f"new-{backend}",
            {"main.tf": 'output "o" {\n  value = "n"\n}\n'},
            backend=backend,
        )
        assert new.pk == reuse_id and new.state_key != old_key
        run = plan(new, alice)
        assert run.status == RunStatus.PLANNED, run.error or log_text(run)
        assert run.summary["destroy"] == 0 and run.summary["add"] == 0, run.summary
        assert "terraform_data.old" not in log_text(run)
    # the old workspace's state is untouched: a restored row (same key) finds it again
    restored = SimpleNamespace(state_key=old_key, backend="pg", slug="old")
    assert state_document(restored) == old_doc


def test_reusing_a_state_key_would_adopt_the_state(ws_root, squad, alice):
    """The control for the test above: same key, same state (what ``ws-<id>`` used to do)."""
    old = new_workspace(squad, alice, "first", {"main.tf": DATA % ("old", "x", "o", "x")})
    applied(old, alice)
    key = old.state_key
    Workspace.objects.filter(pk=old.pk).delete()
    twin = new_workspace(squad, alice, "twin", {"main.tf": 'output "o" {\n  value = "n"\n}\n'})
    Workspace.objects.filter(pk=twin.pk).update(state_key=key)
    twin.refresh_from_db()
    run = plan(twin, alice)
    assert run.summary["destroy"] == 1 and "terraform_data.old" in log_text(run)


def test_the_state_role_reaches_only_its_own_state(ws_root, squad, other_squad, alice, bob):
    mine = new_workspace(squad, alice, "mine", {"main.tf": DATA % ("a", "1", "o", "mine")})
    theirs = new_workspace(
        other_squad, bob, "theirs", {"main.tf": DATA % ("b", "2", "o", "their-5ecret")}
    )
    applied(mine, alice)
    applied(theirs, bob)
    role = tfstate.role_name(mine)
    with admin() as conn:
        flags = conn.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolcanlogin, rolbypassrls "
            "FROM pg_roles WHERE rolname = %s",
            [role],
        ).fetchone()
        assert flags == (False, False, False, True, False)

        def can(sql_text, *args):
            return conn.execute(sql_text, [role, *args]).fetchone()[0]

        assert can("SELECT has_schema_privilege(%s, %s, 'USAGE')", tfstate.schema_name(mine))
        assert not can("SELECT has_schema_privilege(%s, %s, 'USAGE')", tfstate.schema_name(theirs))
        assert not can("SELECT has_schema_privilege(%s, %s, 'CREATE')", tfstate.schema_name(mine))
        assert not can("SELECT has_schema_privilege(%s, 'public', 'CREATE')")
        assert not can("SELECT has_database_privilege(%s, current_database(), 'CREATE')")
        for table in ("infra_variable", "infra_workspace", "auth_user", "portal_apitoken"):
            assert not can("SELECT has_table_privilege(%s, %s, 'SELECT')", table)
    with as_role(mine) as conn:
        own = conn.execute(
            sql.SQL("SELECT data FROM {}.states").format(sql.Identifier(tfstate.schema_name(mine)))
        ).fetchone()[0]
        assert json.loads(own)["outputs"]["o"]["value"] == "mine"
        for query in (
            sql.SQL("SELECT data FROM {}.states").format(
                sql.Identifier(tfstate.schema_name(theirs))
            ),
            sql.SQL("SELECT value FROM infra_variable"),
            sql.SQL("SELECT password FROM auth_user"),
            sql.SQL("CREATE TABLE public.x (y int)"),
            sql.SQL("CREATE SCHEMA tfstate_mine_too"),
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(query)


def test_stale_plan_refused_by_terraform_itself_on_pg(
    ws_root, squad, alice, admin_user, monkeypatch
):
    """Backline's own check is bypassed (as if it raced): Terraform refuses the saved plan
    because the pg state moved on, and the run is discarded as stale."""
    ws = new_workspace(squad, alice, "tfstale", {"main.tf": DATA % ("a", "1", "o", "1")})
    applied(ws, alice)
    Workspace.objects.filter(pk=ws.pk).update(files={"main.tf": DATA % ("a", "2", "o", "2")})
    first = plan(ws, alice)
    services.force_unlock(ws, actor=Actor(user=admin_user))
    Workspace.objects.filter(pk=ws.pk).update(files={"main.tf": DATA % ("a", "3", "o", "3")})
    applied(ws, alice)
    # confirm the first run past Backline's own check, as a race between two applies would
    TerraformRun.objects.filter(pk=first.pk).update(status=RunStatus.CONFIRMED)
    Workspace.objects.filter(pk=ws.pk).update(lock_run=first)
    monkeypatch.setattr(services, "stale_reason", lambda ws, run: "")
    runner.execute_apply(first.pk)
    first.refresh_from_db()
    assert first.status == RunStatus.DISCARDED, first.error or log_text(first)
    assert "terraform refused it" in first.discard_reason
    assert state_document(ws)["outputs"]["o"]["value"] == "3"


def test_moving_a_workspace_between_local_and_pg_keeps_its_state(ws_root, squad, alice):
    ws = new_workspace(
        squad, alice, "mover", {"main.tf": DATA % ("a", "1", "o", "1")}, backend="local"
    )
    applied(ws, alice)
    lineage = json.loads(runner.state_path(ws).read_text())["lineage"]
    services.update_workspace(ws, actor=Actor(user=alice), backend="pg")
    ws.refresh_from_db()
    run = plan(ws, alice)
    assert run.status == RunStatus.PLANNED_AND_FINISHED, log_text(run)
    assert "moved to PostgreSQL" in log_text(run)
    assert state_document(ws)["lineage"] == lineage
    assert not runner.state_path(ws).exists()
    services.update_workspace(ws, actor=Actor(user=alice), backend="local")
    ws.refresh_from_db()
    run = plan(ws, alice)
    assert run.status == RunStatus.PLANNED_AND_FINISHED, run.error or log_text(run)
    assert json.loads(runner.state_path(ws).read_text())["lineage"] == lineage


SQLITE_PROBE = """
from infra import tfstate
from infra.domain.workspaces import _validate_workspace
from infra.models import Workspace
from portal.errors import Invalid
print("default", tfstate.default_backend(), Workspace().backend)
try:
    _validate_workspace(Workspace(slug="x", backend="pg", files={"main.tf": ""}))
except Invalid as exc:
    print("refused", exc.errors["backend"])
"""


def test_the_embedded_sqlite_mode_keeps_the_local_backend(tmp_path):
    """Backline on SQLite (no DATABASE_URL, as `make run`): new workspaces use the local
    backend and choosing pg is a 400 naming the field."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "PYTEST"))}
    env.update(BACKLINE_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="portal.settings")
    for name in ("INFRA_STATE_DATABASE_URL", "BACKLINE_TESTING", "TEST_DATABASE_NAME"):
        env.pop(name, None)
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SQLITE_PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "default local local" in out.stdout, out.stdout
    assert "refused ['the pg backend needs PostgreSQL" in out.stdout, out.stdout


def test_the_saved_plan_is_kept_encrypted_until_the_run_ends(
    ws_root, make_workspace, upstream, alice
):
    import hashlib

    ws = make_workspace(upstream_path=upstream)  # with a sensitive variable
    run = plan(ws, alice)
    assert run.status == RunStatus.PLANNED, run.error or log_text(run)
    saved = SavedPlan.objects.get(run=run)
    on_disk = runner.plan_file(run).read_bytes()
    assert on_disk.startswith(b"PK") and saved.sha256 == hashlib.sha256(on_disk).hexdigest()
    stored = bytes(saved.data)
    assert not stored.startswith(b"PK") and on_disk not in stored and SECRET.encode() not in stored
    # another worker (no run folder here any more) applies it from the database
    shutil.rmtree(runner.run_dir(run))
    run = apply(run, alice)
    assert run.status == RunStatus.APPLIED, run.error or log_text(run)
    assert "Applying the plan saved by the worker that planned" in log_text(run)
    assert not SavedPlan.objects.filter(run=run).exists()


def test_a_workspace_older_than_state_keys_moves_to_pg(ws_root, squad, alice, settings):
    """The migration kept such a workspace's id as its key (its local state stays at ws-<id>);
    on pg its role name is made unique per database (roles are server-wide)."""
    ws = new_workspace(squad, alice, "legacy", {"main.tf": DATA % ("a", "1", "o", "1")})
    Workspace.objects.filter(pk=ws.pk).update(state_key=str(ws.pk))
    ws.refresh_from_db()
    assert runner.ws_root(ws).name == f"ws-{ws.pk}"  # where such a workspace's files always were
    role = tfstate.role_name(ws)
    assert role.startswith("backline_tf_") and role != f"backline_tf_{ws.pk}" and len(role) == 44
    applied(ws, alice)
    assert state_document(ws)["outputs"]["o"]["value"] == "1"
    settings.INFRA_STATE_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/another_backline"
    assert tfstate.role_name(ws) != role  # the same id in another database: another role
