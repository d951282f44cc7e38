"""The README's Python example ("API for bots") runs as written against a real server.

Only two lines change: ``BASE`` points at the test server and ``TOKEN`` is a real token made
the way the README says (``create_token --squad playback --scopes catalog:write``).
"""

import re
import subprocess
import sys
from io import StringIO

from django.core.management import call_command

from squads.models import Service
from tests.live_portal import ROOT, portal_server  # noqa: F401  (fixture)


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## API for bots", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, "no Python example in the README's 'API for bots' section"
    return blocks[0]


def test_readme_python_example_runs_against_a_live_server(portal_server, tmp_path):  # noqa: F811
    call_command("seed_demo", "--catalog-only", stdout=StringIO())
    out = StringIO()
    call_command("create_token", "--squad", "playback", "--scopes", "catalog:write", stdout=out)
    token = out.getvalue().strip().splitlines()[-1]
    assert token.startswith("bl_")

    code = readme_example()
    assert re.search(r'^TOKEN = "bl_\.\.\."', code, re.M), "the example's TOKEN line changed"
    assert re.search(r"^BASE = ", code, re.M), "the example's BASE line changed"
    code = re.sub(r'^TOKEN = "bl_\.\.\."', f'TOKEN = "{token}"', code, flags=re.M)
    code = re.sub(r"^BASE = .*$", f'BASE = "{portal_server.url}/api/v1"', code, flags=re.M)
    script = tmp_path / "example.py"
    script.write_text(code)

    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr + "\n" + portal_server.output()
    assert "token:" in proc.stdout and "playback" in proc.stdout, proc.stdout
    assert "playback-api" in proc.stdout, proc.stdout
    svc = Service.objects.get(slug="playback-api")
    assert svc.runbook_url == "https://runbooks.example.com/playback-api"
