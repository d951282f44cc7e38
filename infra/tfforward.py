"""The one way out of Terraform's sandbox to PostgreSQL: a per-run state socket.

Terraform's pg backend is contacted by terraform itself, inside the sandbox, whose ``isolated``
network cannot reach the host's loopback (where PostgreSQL may listen with trust
authentication). So each run with the pg backend gets a unix socket in a private folder of the
worker, bound read-only into the sandbox at ``SOCKET_DIR``; the backend's ``conn_str`` names
that folder as its host (``tfstate.terraform_conn_str``). Each connection to the socket is
checked before anything reaches the server:

- its startup message must name the workspace's own state role and the state database
  (anything else is answered with a PostgreSQL error: no superuser, no other workspace's role,
  no other database, even where the server trusts local connections);
- SSL and GSS requests are declined (the socket is local), cancel requests are refused;
- the connection to the server is TLS when the state database's own connection is
  (``sslmode`` require / verify-ca / verify-full, checked here, not by terraform).

The role itself may read and write only its workspace's ``states`` table (``infra.tfstate``).
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import ssl
import struct
import tempfile
import threading
from pathlib import Path

SOCKET_DIR = "/run/backline-pg"  # where the folder appears inside the sandbox
DIR_PREFIX = "backline-pg-"  # + the worker's pid: the folders of dead workers are swept
PROTOCOL_3 = 196608
SSL_REQUEST, GSS_REQUEST, CANCEL_REQUEST = 80877103, 80877104, 80877102
MAX_STARTUP = 10_000
MAX_CONNECTIONS = 20
CHUNK = 64 * 1024


def _read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed during startup")
        data += chunk
    return data


def _error(message: str) -> bytes:
    body = b"SFATAL\0C28000\0M" + message.encode() + b"\0\0"
    return b"E" + struct.pack("!I", len(body) + 4) + body


def _params(body: bytes) -> dict[str, str]:
    parts = body.split(b"\0")
    pairs = zip(parts[0::2], parts[1::2], strict=False)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs if k}


def _sweep() -> None:
    """Remove the socket folders of workers that died (a SIGKILL leaves them behind)."""
    for old in Path(tempfile.gettempdir()).glob(f"{DIR_PREFIX}*-*"):
        pid = old.name[len(DIR_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            for entry in old.iterdir():
                entry.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                old.rmdir()


class StateSocket:
    """The per-run socket and its relay threads (see the module docstring)."""

    def __init__(self, tgt, role: str, sslmode: str):
        self.tgt = tgt
        self.host = tgt.host or "/var/run/postgresql"  # libpq's default: the local socket
        self.role = role
        self.sslmode = sslmode
        _sweep()
        self.dir = Path(tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{os.getpid()}-"))
        self.dir.chmod(0o755)
        self.path = self.dir / f".s.PGSQL.{tgt.port}"
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(self.path))
        self.path.chmod(0o777)  # the sandbox's uid connects
        self.listener.listen(MAX_CONNECTIONS)
        self.listener.settimeout(0.5)
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.stopping = threading.Event()
        # close() wakes the accept loop at once (a timeout there made every run wait for it)
        self._wake_r, self._wake_w = os.pipe()
        self.thread = threading.Thread(target=self._accept, name="tf-state-socket", daemon=True)
        self.thread.start()

    def close(self) -> None:
        if self.stopping.is_set():  # closed already (closing twice is allowed)
            return
        self.stopping.set()
        os.write(self._wake_w, b"x")
        self.thread.join(timeout=5)
        self.listener.close()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        self.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.dir.rmdir()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                ready, _, _ = select.select([self.listener, self._wake_r], [], [])
                if self._wake_r in ready:
                    return
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self.slots.acquire(blocking=False):
                conn.close()
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = None
        try:
            client.settimeout(30)
            startup = self._startup(client)
            if startup is None:
                return
            upstream = self._connect()
            upstream.sendall(startup)
            client.settimeout(None)
            upstream.settimeout(None)
            self._relay(client, upstream)
        except (OSError, ssl.SSLError, ConnectionError, ValueError) as exc:
            with contextlib.suppress(OSError):
                client.sendall(_error(f"Backline's state socket: {exc}"))
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.close()
            self.slots.release()

    def _startup(self, client: socket.socket) -> bytes | None:
        """The client's startup message when it may go on; None (answered) when refused."""
        while True:
            length, code = struct.unpack("!II", _read_exact(client, 8))
            if code in (SSL_REQUEST, GSS_REQUEST) and length == 8:
                client.sendall(b"N")
                continue
            if code != PROTOCOL_3 or not 8 < length <= MAX_STARTUP:
                client.sendall(_error("only PostgreSQL protocol 3 startups are relayed"))
                return None
            body = _read_exact(client, length - 8)
            params = _params(body)
            user, database = params.get("user", ""), params.get("database", "")
            if user != self.role or (database or user) != self.tgt.dbname:
                client.sendall(
                    _error(
                        f"only the workspace's own state role ({self.role}) on database "
                        f"{self.tgt.dbname!r} is relayed (asked: user {user!r}, "
                        f"database {database or user!r})"
                    )
                )
                return None
            return struct.pack("!II", length, code) + body

    def _connect(self) -> socket.socket:
        host, port = self.host, self.tgt.port
        if host.startswith("/"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(10)
            sock.connect(os.path.join(host, f".s.PGSQL.{port}"))
            return sock
        sock = socket.create_connection((host, port), 10)
        if self.sslmode == "disable":
            return sock
        sock.sendall(struct.pack("!II", 8, SSL_REQUEST))
        if _read_exact(sock, 1) != b"S":
            raise ConnectionError("the state database refused TLS")
        context = ssl.create_default_context()
        if self.sslmode != "verify-full":
            context.check_hostname = False
        if self.sslmode == "require":
            context.verify_mode = ssl.CERT_NONE
        return context.wrap_socket(sock, server_hostname=host)

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        """Bytes both ways until either side closes (one thread: a TLS socket is never used
        from two threads at once)."""
        other = {client: upstream, upstream: client}
        while not self.stopping.is_set():
            pending = isinstance(upstream, ssl.SSLSocket) and upstream.pending() > 0
            ready, _, _ = select.select([client, upstream], [], [], 0 if pending else 1.0)
            if pending and upstream not in ready:
                ready.append(upstream)
            for sock in ready:
                data = sock.recv(CHUNK)
                if not data:
                    return
                other[sock].sendall(data)
