"""The per-run state socket (infra/tfforward.py), driven by a real PostgreSQL client (psycopg,
libpq) against the real server: only the workspace's own role on the state database is relayed,
whatever the server itself would allow (this machine's PostgreSQL trusts 127.0.0.1)."""

import socket
import stat
import struct

import psycopg
import pytest

from infra import tfstate
from tests.infra.test_pg_state import new_workspace

pytestmark = pytest.mark.django_db


@pytest.fixture
def relay(ws_root, squad, alice):
    ws = new_workspace(squad, alice, "relayed", {"main.tf": ""})
    tfstate.ensure_pg(ws)
    sock = tfstate.state_socket(ws)
    yield ws, sock
    sock.close()


def connect(sock, **kw):
    tgt = tfstate.target()
    args = {"host": str(sock.dir), "port": tgt.port, "dbname": tgt.dbname, "connect_timeout": 10}
    return psycopg.connect(**{**args, **kw}, autocommit=True)


def test_its_own_role_reaches_its_own_state(relay):
    ws, sock = relay
    assert stat.S_ISSOCK(sock.path.stat().st_mode) and sock.path.stat().st_mode & 0o777 == 0o777
    role = tfstate.role_name(ws)
    with connect(sock, user=role, password=tfstate.role_password(ws)) as conn:
        who = conn.execute("SELECT current_user, inet_server_port() IS NOT NULL").fetchone()
        table = f"{tfstate.schema_name(ws)}.states"
        names = [r[0] for r in conn.execute(f"SELECT name FROM {table}").fetchall()]  # noqa: S608
    assert who == (role, True) and names == [tfstate.STATE_NAME]


@pytest.mark.parametrize(
    "what, override",
    [
        ("superuser (trusted by the server)", {"user": "postgres"}),
        ("another database", {"dbname": "postgres"}),
    ],
)
def test_nothing_else_is_relayed(relay, what, override):
    ws, sock = relay
    args = {"user": tfstate.role_name(ws), "password": tfstate.role_password(ws), **override}
    with pytest.raises(psycopg.OperationalError) as err:
        connect(sock, **args)
    assert "only the workspace's own state role" in str(err.value), (what, err.value)
    # the server would have let the superuser in over TCP without a password
    if override.get("user") == "postgres":
        tgt = tfstate.target()
        with psycopg.connect(host="127.0.0.1", port=tgt.port, user="postgres", dbname="postgres"):
            pass


def test_tls_from_inside_is_declined_and_the_socket_goes_with_the_run(relay):
    """An SSLRequest (80877103) gets 'N' (libpq never sends one over a unix socket; a
    hand-made client might); the socket and its folder go when the run's phase ends."""
    _ws, sock = relay
    with socket.socket(socket.AF_UNIX) as raw:
        raw.settimeout(10)
        raw.connect(str(sock.path))
        raw.sendall(struct.pack("!II", 8, 80877103))
        assert raw.recv(1) == b"N"
    sock.close()
    assert not sock.path.exists() and not sock.dir.exists()


def test_a_dead_workers_socket_folder_is_swept(relay):
    """A worker killed mid-run leaves its folder; the next state socket removes it (not a live
    worker's)."""
    import subprocess
    import tempfile
    from pathlib import Path

    dead = subprocess.Popen(["true"])
    dead.wait()
    left = Path(tempfile.gettempdir()) / f"backline-pg-{dead.pid}-x"
    left.mkdir()
    (left / ".s.PGSQL.5432").write_text("")
    ws, sock = relay
    again = tfstate.state_socket(ws)
    try:
        assert not left.exists() and sock.dir.exists() and again.dir.exists()
    finally:
        again.close()
