"""A private PostgreSQL cluster for tests that must not touch the shared one: initdb under
/tmp as the ``postgres`` user, a free loopback port, its unix socket in its own folder."""

import glob
import os
import shutil
import socket
import subprocess

import psycopg
import pytest


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DB = "test_backline_chaos"


def _pg_bin(name):
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        pytest.skip(f"{name} not found (postgresql server package)")
    return found[-1]


def _as_postgres(*argv, check=True):
    cmd = list(argv)
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)


class PrivatePostgres:
    def __init__(self):
        self.port = free_port()
        self.dir = f"/tmp/chaos-pg-{os.getpid()}-{self.port}"
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/{DB}"

    def init(self, host_auth="trust"):
        """``host_auth``: how TCP clients authenticate (``scram-sha-256`` asks for passwords);
        the unix socket in the cluster's folder always trusts (``socket_dsn``)."""
        os.makedirs(self.dir, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        _as_postgres(
            _pg_bin("initdb"),
            "-D",
            f"{self.dir}/data",
            "--auth-local=trust",
            f"--auth-host={host_auth}",
            "-U",
            "postgres",
            "--no-sync",
        )
        self.start()
        with psycopg.connect(self.socket_dsn("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DB}")
        return self

    def socket_dsn(self, db=DB):
        return f"host={self.dir} port={self.port} user=postgres dbname={db} connect_timeout=3"

    def dsn(self, db=DB):
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={db} connect_timeout=3"

    def start(self):
        _as_postgres(
            _pg_bin("pg_ctl"),
            "-D",
            f"{self.dir}/data",
            "-l",
            f"{self.dir}/log",
            "-w",
            "-o",
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c max_connections=100",
            "start",
        )

    def stop(self, mode="immediate"):
        _as_postgres(
            _pg_bin("pg_ctl"), "-D", f"{self.dir}/data", "-m", mode, "-w", "stop", check=False
        )

    def destroy(self):
        self.stop("fast")
        shutil.rmtree(self.dir, ignore_errors=True)
