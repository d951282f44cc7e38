"""Demo pipelines: local git repositories under VAR_DIR with a backline.yml, and a few real runs.

Called by ``python manage.py seed_demo`` after the catalog is seeded. Idempotent: repositories
are created once; runs are queued only for services that have none (a worker runs them; with no
worker yet they wait in the queue until ``make run`` starts one).
"""

import subprocess

from django.conf import settings

from pipelines import services
from pipelines.models import PipelineRun
from portal.actors import Actor
from squads.models import Service

GOOD_SPEC = """\
# Backline pipeline for {slug}
timeout: 5m
branches: [main, "release/*"]
stages:
  - name: build
    steps:
      - name: compile
        run: |
          printf '\\033[1mBuilding {slug}\\033[0m\\n'
          for f in src/*.txt; do echo "  compiling $f"; sleep 0.2; done
  - name: test
    steps:
      - name: unit
        run: |
          for i in 1 2 3 4 5; do printf '\\033[32m✓\\033[0m test_case_%s passed\\n' $i; sleep 0.2; done
      - name: lint
        run: echo "lint clean"
  - name: package
    steps:
      - name: image
        run: echo "built image {slug}:$BACKLINE_COMMIT"
"""

FAILING_STEP = """\
      - name: integration
        run: |
          echo "connecting to the sandbox ledger"
          printf '\\033[31mFAIL\\033[0m test_refund_roundtrip: expected 200, got 502\\n'
          exit 1
"""

DEMO = (
    # slug, commits (message, extra spec), fail?
    ("playback-api", ["Add stream start endpoint", "Cache entitlement lookups"], False),
    ("search-api", ["Tune BM25 weights"], False),
    ("payments-gateway", ["Retry card network timeouts"], True),
)


def _git(path, *args):
    subprocess.run(["git", *args], cwd=path, check=True, capture_output=True)


def make_repo(slug, messages, failing):
    path = settings.VAR_DIR / "demo-repos" / slug
    if (path / ".git").exists():
        return path
    (path / "src").mkdir(parents=True, exist_ok=True)
    _git(path, "init", "-q", "-b", "main")
    _git(path, "config", "user.email", "demo@backline.local")
    _git(path, "config", "user.name", "Backline Demo")
    _git(path, "config", "commit.gpgsign", "false")
    spec = GOOD_SPEC.format(slug=slug)
    if failing:
        spec = spec.replace("      - name: lint\n", FAILING_STEP + "      - name: lint\n")
    (path / "backline.yml").write_text(spec)
    (path / "README.md").write_text(f"# {slug}\n\nDemo repository for Backline pipelines.\n")
    for i, message in enumerate(messages):
        (path / "src" / f"module{i}.txt").write_text(f"{message}\n")
        _git(path, "add", "-A")
        _git(path, "commit", "-q", "-m", message)
    return path


def seed(stdout=None):
    actor = Actor.system("seed_demo", door="command")
    for slug, messages, failing in DEMO:
        service = Service.objects.filter(slug=slug).first()
        if service is None:
            continue
        path = make_repo(slug, messages, failing)
        url = f"file://{path}"
        if service.repository_url != url:
            service.repository_url = url
            service.save(update_fields=["repository_url"])
        if PipelineRun.objects.filter(service=service).exists():
            continue
        services.trigger_run(service, actor=actor, ref="main")
        if slug == "playback-api":
            services.trigger_run(service, actor=actor, ref="main")
        if stdout is not None:
            stdout.write(f"  pipelines: {slug} repository at {path}, runs queued")
