"""The pg backend on a state database of its own (``INFRA_STATE_DATABASE_URL``), the way an
operator sets it up when Backline's database user cannot create roles: a private PostgreSQL
cluster (initdb under /tmp, never the shared one) that asks TCP clients for passwords
(scram-sha-256), and a state admin with CREATEROLE that owns the state database.

There, a workspace's terraform (in the sandbox, in-process) reaches its own state and nothing
else: ``terraform_remote_state`` on another workspace fails with the thief's own role (no right
on the schema; it did authenticate, through the run's state socket), with the other
workspace's role name and as the cluster's superuser (the state socket relays neither), and
straight over TCP (the sandbox's network does not reach the host's loopback). No value of the other state in outputs, logs or the API."""

import json
import secrets

import psycopg
import pytest

from infra import services, tfstate
from infra.models import RunStatus, Workspace
from portal.actors import Actor
from tests.infra.conftest import log_text, state_document, terraform_binary
from tests.infra.test_runs import apply, plan
from tests.infra.test_terraform_sandbox import PG_REMOTE_STATE, everything_shown
from tests.pgcluster import PrivatePostgres

pytestmark = pytest.mark.django_db

OTHER_SECRET = "their-state-value-7f3a"


@pytest.fixture
def state_db(settings):
    pg = PrivatePostgres().init(host_auth="scram-sha-256")
    password = secrets.token_hex(16)
    with psycopg.connect(pg.socket_dsn("postgres"), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE state_admin LOGIN CREATEROLE PASSWORD '{password}'")
        conn.execute("CREATE DATABASE backline_state OWNER state_admin")
    settings.INFRA_STATE_DATABASE_URL = (
        f"postgres://state_admin:{password}@127.0.0.1:{pg.port}/backline_state"
    )
    yield pg
    pg.destroy()


def workspace(owner, actor_user, slug, files):
    ws = services.create_workspace(
        owner, actor=Actor(user=actor_user), slug=slug, name=slug, files=files
    )
    Workspace.objects.filter(pk=ws.pk).update(terraform_bin=terraform_binary())
    ws.refresh_from_db()
    return ws


def test_state_database_of_its_own_with_passwords(
    state_db, ws_root, squad, other_squad, alice, bob
):
    out = f'output "secret" {{\n  value = "{OTHER_SECRET}"\n}}\n'
    theirs = workspace(other_squad, bob, "theirs", {"main.tf": out})
    assert theirs.backend == Workspace.Backend.PG
    run = plan(theirs, bob)
    assert run.status == RunStatus.PLANNED, run.error or log_text(run)
    assert apply(run, bob).status == RunStatus.APPLIED
    assert state_document(theirs)["outputs"]["secret"]["value"] == OTHER_SECRET  # it is there
    with psycopg.connect(state_db.socket_dsn("backline_state"), autocommit=True) as conn:
        schemas = {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace").fetchall()}
    assert tfstate.schema_name(theirs) in schemas  # in the state database, not Backline's

    thief = workspace(squad, alice, "thief", {"main.tf": ""})
    own = tfstate.terraform_conn_str(thief)
    their_role = own.replace(tfstate.role_name(thief), tfstate.role_name(theirs))
    superuser = own.replace(tfstate.role_name(thief), "postgres")
    direct = f"postgres://postgres@127.0.0.1:{state_db.port}/backline_state?sslmode=disable"
    only_own = "only the workspace's own state role"
    attempts = {
        # its own role authenticates (scram, through the run's state socket), then has no right
        "own role": (own, "permission denied for schema"),
        # the state socket relays no other role; the server is not reachable otherwise
        "their role": (their_role, only_own),
        "superuser": (superuser, only_own),
        "superuser over TCP": (direct, "connection refused"),
    }
    for what, (conn_str, refusal) in attempts.items():
        files = {
            "main.tf": PG_REMOTE_STATE
            % (json.dumps(conn_str), json.dumps(tfstate.schema_name(theirs)))
        }
        services.update_workspace(thief, actor=Actor(user=alice), files=files)
        run = plan(thief, alice)
        assert run.status == RunStatus.ERRORED, (what, log_text(run))
        text = everything_shown(alice, thief, run)
        assert OTHER_SECRET not in text, what
        assert refusal in text, (what, text)
        assert tfstate.role_password(thief) not in text and "state_admin" not in text
