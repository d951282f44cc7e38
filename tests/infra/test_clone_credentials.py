"""A git workspace's clone URL credentials never reach its run log (issue 14, item 5)."""

import pytest

from infra import runner as tf_runner
from infra import services as infra_services
from infra.models import TerraformRun, Workspace
from portal.actors import Actor
from tests.infra.conftest import log_text

TOKEN = "glpat-WsToken2a9f6e13"
# nothing listens on port 9: the clone fails at once, after the URL was logged
DEAD_REPO = f"http://oauth2:{TOKEN}@127.0.0.1:9/acme/net.git"

pytestmark = pytest.mark.django_db


def test_terraform_clone_log_shows_no_credential(ws_root, alice, squad, tf_bin):
    ws = Workspace.objects.create(
        slug="net",
        name="Net",
        owner=squad,
        source="git",
        repository_url=DEAD_REPO,
        terraform_bin=tf_bin,
    )
    run = infra_services.queue_run(ws, actor=Actor(user=alice))
    tf_runner.execute_plan(run.pk)
    run = TerraformRun.objects.get(pk=run.pk)
    text = log_text(run)
    assert run.status == "errored" and "$ git clone" in text and "127.0.0.1:9" in text
    assert TOKEN not in text and TOKEN not in run.error, text
    assert "https://****@" in text or "http://****@" in text
