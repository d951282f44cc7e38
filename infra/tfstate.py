"""Where a workspace's Terraform state lives, keyed by its ``state_key`` (never reused).

- **pg** (the default when Backline runs on PostgreSQL, or when ``INFRA_STATE_DATABASE_URL``
  names a PostgreSQL database): Terraform's built-in ``pg`` backend. Each workspace has its own
  schema ``tfstate_<key>`` (one ``states`` table, made by Backline, not by Terraform) and its own
  login role ``backline_tf_<key>`` that may read and write that table and nothing else: no other
  workspace's schema, no Backline table, no right to create anything. Terraform locks the state
  with PostgreSQL advisory locks (released when its connection ends, so a killed worker leaves no
  lock). The row ids come from one shared sequence starting at 10^12 (the advisory lock keys of
  different workspaces never collide, nor with Backline's own small keys).
- **local** (the embedded SQLite mode): ``WORKSPACE_ROOT/infra/ws-<key>/state/terraform.tfstate``.

Backline sets the schema and the role up itself (``ensure_pg``) as the *state admin*: the user of
``INFRA_STATE_DATABASE_URL``, else Backline's own database user. That user needs CREATEROLE and
CREATE on the database. The role's password is derived from ``SECRET_KEY`` (every worker computes
the same one, nothing is stored) and set again, as a SCRAM verifier, each time the state is
prepared. Terraform gets the password in ``PGPASSWORD`` only (masked in every log); the backend
block Backline writes names the role, host and schema, never a secret. In the sandbox the host is
the run's state socket (``infra.tfforward``), which relays only that role to that database.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import dj_database_url
import psycopg
from django.conf import settings
from django.db import connections
from psycopg import sql

from infra.tfforward import SOCKET_DIR, StateSocket
from portal import sandbox

SHARED_SCHEMA = "backline_tfstate"
SEQUENCE = "states_id_seq"
FIRST_ID = 10**12
DDL_LOCK = 0x0BAC7F  # pg_advisory_xact_lock key serialising the DDL below across workers
STATE_NAME = "default"  # Terraform's workspace name (Backline uses no CLI workspaces)
KEY_RE = re.compile(r"^[0-9a-z]{1,40}$")
UUID_KEY_RE = re.compile(r"^[0-9a-f]{32}$")
PQ_SSLMODES = ("disable", "require", "verify-ca", "verify-full")
_SSL_SEEN: dict[tuple[str, int], str] = {}


class StateError(Exception):
    """The state store cannot be used; the message says what to change."""


def new_state_key() -> str:
    return uuid.uuid4().hex


def _key(ws) -> str:
    key = str(ws.state_key or "")
    if not KEY_RE.match(key):
        raise StateError(f"workspace {ws.slug!r} has no valid state key ({key!r})")
    return key


def schema_name(ws) -> str:
    return f"tfstate_{_key(ws)}"


def role_name(ws) -> str:
    """Roles are cluster-wide: a random key is unique everywhere; a key kept from before state
    keys (the workspace's id) is made unique per database, so that two installations sharing a
    PostgreSQL server never share a role."""
    key = _key(ws)
    if not UUID_KEY_RE.match(key):
        tgt = target()
        key = hashlib.sha256(f"{tgt.dbname if tgt else ''}:{key}".encode()).hexdigest()[:32]
    return f"backline_tf_{key}"


def role_password(ws) -> str:
    msg = f"backline-terraform-state:{_key(ws)}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), msg, hashlib.sha256).hexdigest()


# --- where the state database is ---------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    host: str
    port: int
    dbname: str
    user: str
    password: str
    sslmode: str

    def admin_conninfo(self) -> dict:
        info = {"host": self.host, "port": self.port, "dbname": self.dbname, "user": self.user}
        if self.password:
            info["password"] = self.password
        if self.sslmode:
            info["sslmode"] = self.sslmode
        return info


def target() -> Target | None:
    """The PostgreSQL database holding pg states, None when there is none (SQLite, no URL)."""
    url = settings.INFRA_STATE_DATABASE_URL
    if url:
        db = dj_database_url.parse(url)
        if db["ENGINE"] != "django.db.backends.postgresql":
            raise StateError("INFRA_STATE_DATABASE_URL must be a postgres:// URL")
    else:
        db = connections["default"].settings_dict  # the test database name under pytest
        if db["ENGINE"] != "django.db.backends.postgresql":
            return None
    options = db.get("OPTIONS") or {}
    return Target(
        host=str(db.get("HOST") or ""),
        port=int(db.get("PORT") or 5432),
        dbname=str(db["NAME"]),
        user=str(db.get("USER") or "postgres"),
        password=str(db.get("PASSWORD") or ""),
        sslmode=str(options.get("sslmode") or ""),
    )


def pg_available() -> bool:
    try:
        return target() is not None
    except StateError:
        return False


def default_backend() -> str:
    """The backend a new workspace gets: pg wherever a PostgreSQL state database exists."""
    return "pg" if pg_available() else "local"


def terraform_conn_str(ws) -> str:
    """The connection string Terraform's pg backend uses, without the password. In the sandbox
    it names the run's state socket (``infra.tfforward``: the only way from there to
    PostgreSQL), which relays to the server with the TLS Backline's own connection uses."""
    tgt = target()
    if tgt is None:
        raise StateError(
            "The pg state backend needs PostgreSQL: Backline runs on SQLite and "
            "INFRA_STATE_DATABASE_URL is not set. Use the local backend."
        )
    user, dbname = quote(role_name(ws), safe=""), quote(tgt.dbname, safe="")
    if sandbox.enabled():
        return f"postgres://{user}@/{dbname}?host={SOCKET_DIR}&port={tgt.port}&sslmode=disable"
    if tgt.host.startswith("/") or not tgt.host:
        where = quote(tgt.host or "/var/run/postgresql", safe="/")
        return f"postgres://{user}@/{dbname}?host={where}&port={tgt.port}&sslmode=disable"
    sslmode = _terraform_sslmode(tgt)
    host = f"[{tgt.host}]" if ":" in tgt.host else tgt.host
    return f"postgres://{user}@{host}:{tgt.port}/{dbname}?sslmode={sslmode}"


def state_socket(ws) -> StateSocket:
    """The run's state socket (``infra.tfforward``), relaying only the workspace's own role."""
    tgt = target()
    if tgt is None:
        raise StateError("no PostgreSQL state database is configured")
    sslmode = "disable" if tgt.host.startswith("/") or not tgt.host else _terraform_sslmode(tgt)
    return StateSocket(tgt, role_name(ws), sslmode)


def _terraform_sslmode(tgt: Target) -> str:
    """The sslmode for Terraform's lib/pq (no ``prefer``/``allow`` there): the URL's own when
    lib/pq knows it, else what Backline's own connection to that server ended up using."""
    if tgt.sslmode in PQ_SSLMODES:
        return tgt.sslmode
    key = (tgt.host, tgt.port)
    if key not in _SSL_SEEN:
        with _admin() as conn:
            _SSL_SEEN[key] = "require" if conn.pgconn.ssl_in_use else "disable"
    return _SSL_SEEN[key]


def backend_block(ws) -> str:
    """The override file that points Terraform at the workspace's schema (no secret in it)."""
    return (
        'terraform {\n  backend "pg" {\n'
        f"    conn_str             = {json.dumps(terraform_conn_str(ws))}\n"
        f"    schema_name          = {json.dumps(schema_name(ws))}\n"
        "    skip_schema_creation = true\n"
        "    skip_table_creation  = true\n"
        "    skip_index_creation  = true\n"
        "  }\n}\n"
    )


def _admin():
    tgt = target()
    if tgt is None:
        raise StateError("no PostgreSQL state database is configured")
    try:
        return psycopg.connect(**tgt.admin_conninfo(), autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise StateError(f"cannot connect to the state database: {exc}") from None


def empty_state() -> str:
    """A valid empty state (serial 0): the row exists before Terraform's first lock, so a first
    plan never holds the pg backend's global creation lock (advisory lock -1)."""
    return json.dumps(
        {
            "version": 4,
            "terraform_version": "1.0.0",
            "serial": 0,
            "lineage": str(uuid.uuid4()),
            "outputs": {},
            "resources": [],
        }
    )


def _ids(ws):
    shared = sql.Identifier(SHARED_SCHEMA)
    schema = sql.Identifier(schema_name(ws))
    return {
        "role": sql.Identifier(role_name(ws)),
        "schema": schema,
        "table": sql.SQL("{}.states").format(schema),
        "shared": shared,
        "seq": sql.SQL("{}.{}").format(shared, sql.Identifier(SEQUENCE)),
    }


def _ensure_role(conn, cur, ws, ids) -> None:
    """The login role, its password (sent as a SCRAM verifier, never in clear) and the comment
    naming the database it serves (``drop_roles``)."""
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role_name(ws)])
    if cur.fetchone() is None:
        cur.execute(
            sql.SQL("CREATE ROLE {} LOGIN NOINHERIT CONNECTION LIMIT 20").format(ids["role"])
        )
    verifier = conn.pgconn.encrypt_password(
        role_password(ws).encode(), role_name(ws).encode(), b"scram-sha-256"
    ).decode()
    cur.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(ids["role"], sql.Literal(verifier)))
    comment = sql.Literal(f"backline terraform state: {conn.info.dbname}")
    cur.execute(sql.SQL("COMMENT ON ROLE {} IS {}").format(ids["role"], comment))


def _ensure_table(cur, ids, seed: str | None) -> None:
    """The schema and the ``states`` table Terraform's pg backend expects, its row, the grants."""
    cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ids["schema"]))
    cur.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (id bigint NOT NULL DEFAULT nextval({}) "
            "PRIMARY KEY, name text UNIQUE NOT NULL, data text)"
        ).format(ids["table"], sql.Literal(f"{SHARED_SCHEMA}.{SEQUENCE}"))
    )
    cur.execute(
        sql.SQL("INSERT INTO {} (name, data) VALUES (%s, %s) ON CONFLICT DO NOTHING").format(
            ids["table"]
        ),
        [STATE_NAME, seed or empty_state()],
    )
    role = ids["role"]
    for grant in (
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(ids["schema"], role),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(ids["table"], role),
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(ids["shared"], role),
        sql.SQL("GRANT USAGE ON SEQUENCE {} TO {}").format(ids["seq"], role),
    ):
        cur.execute(grant)


def ensure_pg(ws, *, seed: str | None = None) -> None:
    """Create (or repair) the workspace's schema, table, role and grants; set the role's
    password. ``seed`` is the state to start from when the workspace has none yet (a local state
    carried over when the workspace moves to pg)."""
    ids = _ids(ws)
    try:
        with _admin() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [DDL_LOCK])
            cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ids["shared"]))
            cur.execute(
                sql.SQL("CREATE SEQUENCE IF NOT EXISTS {} AS bigint START WITH {}").format(
                    ids["seq"], sql.Literal(FIRST_ID)
                )
            )
            _ensure_role(conn, cur, ws, ids)
            _ensure_table(cur, ids, seed)
    except psycopg.Error as exc:
        raise StateError(
            f"Backline could not prepare the workspace's state schema and role: {exc}. The state "
            "database user needs CREATEROLE and CREATE on the database (see README, "
            "INFRA_STATE_DATABASE_URL)."
        ) from None


def read_pg(ws) -> str | None:
    """The workspace's state document in PostgreSQL, None when there is none."""
    try:
        with _admin() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema_name(ws)])
            if cur.fetchone() is None:
                return None
            cur.execute(
                sql.SQL("SELECT data FROM {}.states WHERE name = %s").format(
                    sql.Identifier(schema_name(ws))
                ),
                [STATE_NAME],
            )
            row = cur.fetchone()
    except psycopg.Error as exc:
        raise StateError(f"cannot read the workspace's state: {exc}") from None
    return row[0] if row else None


def serial_lineage(text: str | None):
    """(serial, lineage) of a state document, (None, "") when there is none."""
    try:
        data = json.loads(text or "")
    except ValueError:
        return None, ""
    if not isinstance(data, dict):
        return None, ""
    return data.get("serial"), data.get("lineage", "")


def local_state_path(ws) -> Path:
    return (
        Path(settings.WORKSPACE_ROOT) / "infra" / f"ws-{_key(ws)}" / "state" / "terraform.tfstate"
    )


def current(ws):
    """(serial, lineage) of the workspace's state where Backline keeps it; (None, "") for a
    backend from the code (Terraform itself refuses a stale plan there)."""
    if ws.backend == "pg":
        return serial_lineage(read_pg(ws))
    if ws.backend == "local":
        try:
            return serial_lineage(local_state_path(ws).read_text())
        except OSError:
            return None, ""
    return None, ""


def drop_roles(dbname: str) -> int:
    """Drop the state roles Backline made for ``dbname`` whose schemas are gone (the test
    suite's clean-up after its throwaway databases; run it connected elsewhere)."""
    with _admin() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT r.rolname FROM pg_roles r JOIN pg_shdescription d ON d.objoid = r.oid "
            "WHERE r.rolname LIKE 'backline\\_tf\\_%%' AND d.description = %s",
            [f"backline terraform state: {dbname}"],
        )
        dropped = 0
        for (name,) in cur.fetchall():
            try:
                cur.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
                cur.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
                dropped += 1
            except psycopg.Error:
                continue  # still has rights in another database: left for that one
    return dropped
