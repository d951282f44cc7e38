"""The findings of issue 14 "Catalog imports read what they shouldn't", each against real files
and real loopback HTTP servers: placeholders and Location targets stay inside the imported
folder (or under the remote catalog's base URL), remote catalogs are fetched through the URL
guard (redirects re-checked, streamed with a size cap, one total deadline), the YAML alias bomb
is refused fast and before anything else, and a caller with no right to import is refused before
any parsing."""

import tracemalloc

import pytest
from django.core.exceptions import PermissionDenied

from portal.actors import Actor
from squads import backstage
from squads.backstage import sources
from squads.models import Api, Squad
from tests.conftest import client_for
from tests.outbound_servers import serve, wait_until

ORG = """\
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: team-a}
spec: {type: team, children: []}
"""
API = """\
apiVersion: backstage.io/v1alpha1
kind: API
metadata: {name: ledger}
spec:
  type: openapi
  lifecycle: production
  owner: team-a
  definition:
    $text: '%s'
"""


def location(*targets):
    items = ", ".join(f"'{t}'" for t in targets)
    return (
        "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata: {name: loc}\n"
        f"spec: {{targets: [{items}]}}\n"
    )


def run(paths):
    return backstage.import_catalog(backstage.load_sources(paths), Actor.command())


# --- placeholders ----------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["/etc/passwd", "file:///etc/passwd", "../../../../etc/passwd"])
def test_text_placeholders_cannot_read_local_files_outside_the_folder(db, tmp_path, target):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "org.yaml").write_text(ORG)
    (tmp_path / "cat" / "api.yaml").write_text(API % target)
    with pytest.raises(backstage.ImportFailed) as info:
        run([tmp_path / "cat"])
    assert "outside the imported folder" in str(info.value)
    assert not Api.objects.exists()


def test_a_remote_catalog_reads_placeholders_only_under_its_own_base(db):
    with serve() as (base, routes), serve("127.0.0.2") as (other, elsewhere):
        routes.body("/cat/org.yaml", ORG)
        routes.body("/cat/ledger.yaml", "openapi: 3.0.0\n")
        routes.body("/secret.yaml", "internal: true\n")
        elsewhere.body("/spec.yaml", "openapi: 3.0.0\n")
        for target, read in (
            ("./ledger.yaml", True),
            ("../secret.yaml", False),
            ("%2e%2e/secret.yaml", False),
            (f"{other}/spec.yaml", False),
            (f"{base}/cat/../secret.yaml", False),
        ):
            routes.body("/cat/api.yaml", API % target)
            report = run([f"{base}/cat/org.yaml", f"{base}/cat/api.yaml"])
            definition = Api.objects.get(slug="ledger").definition
            if read:
                assert definition == "openapi: 3.0.0\n"
            else:  # not fetched: a warning, and what was stored before stays
                assert "internal" not in definition
                assert any("not under" in w for w in report.warnings), (target, report.warnings)
        assert routes.hits["/secret.yaml"] == 0 and elsewhere.hits["/spec.yaml"] == 0


# --- Location targets --------------------------------------------------------------------------
def test_location_targets_stay_inside_the_imported_folder(db, tmp_path):
    (tmp_path / "outside.yaml").write_text(ORG)
    (tmp_path / "cat").mkdir()
    for target in (
        "../outside.yaml",
        f"file://{tmp_path}/outside.yaml",
        str(tmp_path / "outside.yaml"),
    ):
        (tmp_path / "cat" / "all.yaml").write_text(location(target))
        with pytest.raises(backstage.ImportFailed) as info:
            run([tmp_path / "cat" / "all.yaml"])
        assert "outside the imported folder" in str(info.value), target
    assert not Squad.objects.exists()


def test_a_remote_location_cannot_point_elsewhere(db):
    with serve() as (base, routes), serve("127.0.0.2") as (other, elsewhere):
        routes.body("/cat/all.yaml", location("../private/org.yaml", f"{other}/org.yaml"))
        routes.body("/private/org.yaml", ORG)
        elsewhere.body("/org.yaml", ORG)
        with pytest.raises(backstage.ImportFailed) as info:
            run([f"{base}/cat/all.yaml"])
        errors = [e.message for e in info.value.errors]
        assert len(errors) == 2 and all("outside the imported folder" in m for m in errors)
        assert routes.hits["/private/org.yaml"] == 0 and elsewhere.hits["/org.yaml"] == 0


# --- fetching remote catalogs ------------------------------------------------------------------
def test_a_remote_catalog_redirecting_to_an_internal_address_is_refused(db, settings):
    settings.OUTBOUND_ALLOW = ["127.0.0.2/32"]
    with serve("127.0.0.2") as (public, front), serve("127.0.0.3") as (internal, inner):
        inner.body("/admin/catalog.yaml", ORG)
        front.redirect("/catalog.yaml", f"{internal}/admin/catalog.yaml")
        front.redirect("/meta.yaml", "http://169.254.169.254/latest/user-data")
        for path in ("/catalog.yaml", "/meta.yaml"):
            with pytest.raises(backstage.SourceError, match="outbound URL guard"):
                backstage.load_sources([f"{public}{path}"])
        with pytest.raises(backstage.SourceError, match="outbound URL guard"):
            backstage.load_sources([f"{internal}/admin/catalog.yaml"])
        assert inner.hits["/admin/catalog.yaml"] == 0


def test_a_huge_remote_body_is_refused_without_being_downloaded():
    with serve() as (base, routes):
        routes.huge("/big.yaml", total=300 * 2**20)
        tracemalloc.start()
        try:
            with pytest.raises(backstage.SourceError, match="larger than 10 MB"):
                backstage.load_sources([f"{base}/big.yaml"])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 40 * 2**20, f"peak {peak / 2**20:.0f} MB"
        assert routes.bodies.get("/big.yaml", 0) < 200 * 2**20


def test_a_slow_remote_body_is_cut_at_the_total_deadline(monkeypatch):
    monkeypatch.setattr(sources, "HTTP_TIMEOUT", 2)
    with serve() as (base, routes):
        routes.drip("/slow.yaml", seconds=120, every=0.5)  # each byte within any read timeout
        with pytest.raises(backstage.SourceError, match="timed out after 2 s"):
            backstage.load_sources([f"{base}/slow.yaml"])
        # cut at the total deadline: the client hung up before the drip was over
        wait_until(lambda: "/slow.yaml" in routes.cut, what="the client to hang up")


# --- YAML alias bombs and permission first -----------------------------------------------------
BOMB = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(
            f"{b}: &{b} [{','.join(['*' + a] * 9)}]"
            for a, b in zip("abcdefgh", "bcdefghi", strict=True)
        ),
    ]
)


def _refuse_to_build(monkeypatch):
    """Every PyYAML entry point that builds nodes or objects, replaced by one that records the
    call and refuses: a bomb that reaches one of them was not refused before parsing."""
    import yaml

    calls = []

    def spy(name):
        def refuse(*args, **kwargs):
            calls.append(name)
            raise RuntimeError(f"yaml.{name} was called")

        return refuse

    for name in ("load", "load_all", "safe_load", "safe_load_all", "compose", "compose_all"):
        monkeypatch.setattr(yaml, name, spy(name))
    return calls


def test_the_512_byte_alias_bomb_is_a_fast_clear_400(db, alice, monkeypatch):
    """Refused from the event stream: no YAML node or object is ever built (not: how long)."""
    assert len(BOMB) < 600
    built = _refuse_to_build(monkeypatch)
    resp = client_for(alice).generic(
        "POST", "/api/v1/catalog/import", BOMB.encode(), content_type="application/yaml"
    )
    assert resp.status_code == 400, resp.content[:500]
    assert "too many aliases" in resp.json()["message"]
    assert len(resp.content) < 4000
    assert built == []


def test_a_bomb_under_the_alias_limit_builds_no_huge_error_messages(db, alice, monkeypatch):
    """~50,000 nodes through aliases placed in schema-checked fields: every error message is
    short (the schema's message used to quote the whole expanded value). Counted on the
    messages built, not timed."""
    anchors = [
        'x: &x ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        "y: &y [" + ",".join(["*x"] * 10) + "]",
        "z: &z [" + ",".join(["*y"] * 10) + "]",
        "w: &w [" + ",".join(["*z"] * 8) + "]",
    ]
    # one document (an anchor is not visible in the next document): the anchors as annotations
    doc = (
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: bomb\n"
        "  annotations:\n"
        + "".join(f"    {line}\n" for line in anchors)
        + "  description: *w\n  title: *w\nspec: {type: *w, lifecycle: *w, owner: *w}\n"
    )
    from squads.backstage import schema

    messages = []
    real = schema._message
    monkeypatch.setattr(schema, "_message", lambda e: messages.append(real(e)) or messages[-1])
    resp = client_for(alice).generic(
        "POST", "/api/v1/catalog/import", doc.encode(), content_type="application/yaml"
    )
    assert resp.status_code == 400, resp.content[:500]
    assert len(resp.content) < 50_000, len(resp.content)
    assert "description" in resp.content.decode()  # refused by the schema, not the parser
    assert messages and max(len(m) for _, m in messages) <= 301, [m[:80] for _, m in messages]


def test_no_parsing_before_the_permission_check(db, charlie, monkeypatch):
    from portal import safeparse

    calls = []
    real = safeparse.load_yaml_all
    monkeypatch.setattr(
        safeparse, "load_yaml_all", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    resp = client_for(charlie).generic(
        "POST", "/api/v1/catalog/import", BOMB.encode(), content_type="application/yaml"
    )
    assert resp.status_code == 403 and "nothing was read" in resp.json()["message"]
    assert calls == []
    with pytest.raises(PermissionDenied):
        backstage.import_catalog([("x.yaml", BOMB)], Actor(user=charlie))
    assert calls == []


@pytest.mark.parametrize(
    "repo,why",
    [
        ("ext::sh -c touch% /tmp/pwned", "remote helpers"),
        ("http://169.254.169.254/latest/", "always refused"),
        ("/srv/other-squad/repo", "local repositories"),
    ],
)
def test_an_imported_repository_url_goes_through_the_guard(db, tmp_path, settings, repo, why):
    settings.OUTBOUND_ALLOW = []
    (tmp_path / "org.yaml").write_text(ORG)
    (tmp_path / "svc.yaml").write_text(
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: svc\n"
        f"  annotations: {{backline.io/repository: '{repo}'}}\n"
        "spec: {type: service, lifecycle: production, owner: team-a}\n"
    )
    with pytest.raises(backstage.ImportFailed) as info:
        run([tmp_path])
    [issue] = info.value.errors
    assert issue.field == "metadata.annotations[backline.io/repository]" and why in issue.message
