"""The lean read path (``portal.leanpath``, ``squads.api.lean``) answers exactly as the DRF
view does: each request of a matrix is sent through the real WSGI application gunicorn serves
(``portal.wsgi.application``, driven by werkzeug's WSGI client, not Django's test client,
which would bypass the wrapper) with the lean path on and again with ``LEAN_READS`` off; the
two give the same status, JSON and headers. Each case also says whether the lean path must
have answered it (the supported reads) or left it to Django (everything else)."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from werkzeug.test import Client

from pipelines import services as pipeline_services
from pipelines.models import RunStatus
from portal import metrics
from portal.actors import Actor
from portal.models import ApiToken
from portal.wsgi import application
from squads.models import Service
from tests.factories import ServiceFactory, SquadFactory, SystemFactory, TribeFactory

pytestmark = pytest.mark.django_db(transaction=True)

client = Client(application, use_cookies=False)  # each request carries only its own headers
IGNORED_HEADERS = {"content-length"}  # PostgreSQL's JSON text has spaces DRF's has not


def lean_count():
    return metrics.LEAN_READS.labels(outcome="lean")._value.get()


def get(path, headers, settings, lean=True):
    settings.LEAN_READS = lean
    before = lean_count()
    resp = client.get(path, headers=headers)
    served = lean_count() - before
    headers_out = {
        k.lower(): v for k, v in resp.headers.items() if k.lower() not in IGNORED_HEADERS
    }
    body = resp.get_data()
    return resp.status_code, (resp.json if body else None), headers_out, served


def same(path, headers, settings, *, lean):
    """Both paths' answers to ``path``, asserted equal; ``lean``: the lean path answered."""
    fast = get(path, headers, settings, lean=True)
    slow = get(path, headers, settings, lean=False)
    assert slow[3] == 0
    assert fast[:3] == slow[:3], path
    assert fast[3] == (1 if lean else 0), f"{path}: lean path {'skipped' if lean else 'used'}"
    return fast


@pytest.fixture
def catalog(squad, other_squad):
    audio = SystemFactory(slug="audio-stack", name="Audio stack")
    far = SquadFactory(slug="far-away", name="Far away", tribe=TribeFactory(slug="distant"))
    specs = [
        ("playback-api", "Playback API", squad, "production", 1, "service", audio),
        ("playback-web", "Playback web", squad, "experimental", 2, "website", audio),
        ("search-index", "Search index", other_squad, "production", 2, "service", None),
        ("search-ui", "Search UI & more", other_squad, "deprecated", 3, "website", None),
        ("ünïcode-free", "Zebra ünïcode svc", far, "production", 3, "library", None),
        ("quote-svc", 'Quote "the" service', far, "experimental", 1, "service", audio),
    ]
    for i in range(40):  # enough for several pages
        specs.append((f"bulk-{i:02d}", f"Bulk {i:02d}", far, "production", 1 + i % 3, "job", None))
    for slug, name, owner, lifecycle, tier, kind, system in specs:
        ServiceFactory(
            slug=slug,
            name=name,
            owner=owner,
            lifecycle=lifecycle,
            tier=tier,
            type=kind,
            system=system,
            description=f"{name} does audio things",
        )


@pytest.fixture
def bearer(squad):
    _token, raw = ApiToken.generate(squad=squad, name="reader", scopes=[])
    return {"Authorization": f"Bearer {raw}"}


LEAN = [
    "/api/v1/services/",
    "/api/v1/services",
    "/api/v1/services/?page_size=20",
    "/api/v1/services/?page_size=20&page=2",
    "/api/v1/services/?page_size=20&page=3",  # the last page
    "/api/v1/services/?page_size=7&page=2&owner=far-away",
    "/api/v1/services/?page_size=100000",  # over the maximum
    "/api/v1/services/?page_size=0",
    "/api/v1/services/?page_size=-3",
    "/api/v1/services/?page_size=abc",
    "/api/v1/services/?page_size=",
    "/api/v1/services/?page=",
    "/api/v1/services/?page=1&page_size=1",
    "/api/v1/services/?owner=playback",
    "/api/v1/services/?owner=%20playback%20",
    "/api/v1/services/?owner=",
    "/api/v1/services/?squad=search",
    "/api/v1/services/?owner=playback&squad=search",
    "/api/v1/services/?owner=playback&squad=playback",
    "/api/v1/services/?squad=search&page_size=1&page=2",
    "/api/v1/services/?type=job&page_size=7&page=6",  # a partial last page
    "/api/v1/services/?tier=2&page_size=5&page=3",
    "/api/v1/services/?owner=nobody",
    "/api/v1/services/?tribe=audio",
    "/api/v1/services/?tribe=distant&tier=1",
    "/api/v1/services/?system=audio-stack",
    "/api/v1/services/?lifecycle=production",
    "/api/v1/services/?lifecycle=",
    "/api/v1/services/?tier=3",
    "/api/v1/services/?type=website",
    "/api/v1/services/?type=website&lifecycle=deprecated&owner=search&tier=3",
    "/api/v1/services/?search=playback",
    "/api/v1/services/?search=playback&page_size=1&page=2",
    "/api/v1/services/?q=search",
    "/api/v1/services/?search=audio&owner=far-away&page_size=5&page=3",
    "/api/v1/services/?search=",
    "/api/v1/services/?search=%20%20",
    "/api/v1/services/?search=%22the%22",  # quotes
    "/api/v1/services/?search=%22unterminated",
    "/api/v1/services/?search=UI%20%26%20more",  # &
    "/api/v1/services/?search=%C3%BCn%C3%AFcode",  # unicode
    "/api/v1/services/?search=-playback%20OR%20bulk",
    "/api/v1/services/?search=100%25_%5C",  # LIKE's special characters
    "/api/v1/services/?search=bulk&tier=2&lifecycle=production",
    "/api/v1/services/playback-api/",
    "/api/v1/services/playback-api",
    "/api/v1/services/facets/",
    "/api/v1/services/facets",
    "/api/v1/services/facets/?facet=type",
    "/api/v1/services/facets/?facet=owner&facet=tribe&facet=system&facet=level&facet=tier",
    "/api/v1/services/facets/?facet=type&facet=type&facet=lifecycle",
    "/api/v1/services/facets/?facet=type&owner=nobody",
    "/api/v1/services/facets/?facet=lifecycle&search=playback&tier=1",
    "/api/v1/services/facets/?facet=lifecycle&facet=type&facet=owner&page_size=20",  # ignored
    "/api/v1/services/facets/?facet=tier&page=last&page_size=x&owner=playback",
]
DJANGO = [
    "/api/v1/services/?page_size=20&page=4",  # beyond the last page
    "/api/v1/services/?page=0",
    "/api/v1/services/?page=last",
    "/api/v1/services/?page=two",
    "/api/v1/services/?lifecycle=retired",
    "/api/v1/services/?lifecycle=%20production",
    "/api/v1/services/?tier=4",
    "/api/v1/services/?tier=one",
    "/api/v1/services/?ordering=-name",
    "/api/v1/services/?tag=audio",
    "/api/v1/services/?owner=a&owner=b",
    "/api/v1/services/?search=a&q=b",
    "/api/v1/services/?owner=%00",
    "/api/v1/services/?format=json",
    "/api/v1/services/?unknown=1",
    "/api/v1/services/no-such-service/",  # 404
    "/api/v1/services/%C3%BCn%C3%AFcode-free/",  # not a slug the routes match: 404
    "/api/v1/services/playback-api/scorecard/",
    "/api/v1/services/facets/?facet=nope",
    "/api/v1/services/facets/?facet=",
]


def test_lean_answers_equal_drf_answers(catalog, bearer, settings):
    for path in LEAN:
        status, body, headers, _ = same(path, bearer, settings, lean=True)
        assert status == 200, path
        assert headers["content-type"] == "application/json"
        assert headers["cache-control"] == "no-store" and "content-security-policy" in headers
    for path in DJANGO:
        same(path, bearer, settings, lean=False)


def test_lean_answers_are_real(catalog, bearer, settings):
    """Not two empty answers: the pages hold what the filters select."""
    _s, body, _h, _l = get("/api/v1/services/?owner=playback", bearer, settings)
    assert [r["slug"] for r in body["results"]] == ["playback-api", "playback-web"]
    _s, body, _h, _l = get("/api/v1/services/?page_size=20&page=2", bearer, settings)
    assert body["count"] == 46 and len(body["results"]) == 20
    assert body["next"].endswith("page=3&page_size=20")
    assert body["previous"] == "http://localhost/api/v1/services/?page_size=20"
    _s, body, _h, _l = get("/api/v1/services/facets/?facet=tier", bearer, settings)
    assert body["count"] == 46 and sum(f["count"] for f in body["facets"]["tier"]) == 46
    _s, body, _h, _l = get("/api/v1/services/?search=%C3%BCn%C3%AFcode", bearer, settings)
    assert [r["slug"] for r in body["results"]] == ["ünïcode-free"]


def test_one_statement_per_lean_read(catalog, bearer, settings):
    get("/api/v1/services/playback-api/", bearer, settings)  # connect, last use recorded
    searched = "/api/v1/services/?search=bulk&tier=2"
    for path in ["/api/v1/services/playback-api/", "/api/v1/services/?tier=2", searched]:
        with CaptureQueriesContext(connection) as queries:
            assert get(path, bearer, settings)[0] == 200
        assert len(queries) == 1, [q["sql"] for q in queries]
    with connection.cursor() as cursor:  # planned once per connection, not per request
        cursor.execute(
            "SELECT statement LIKE '%%websearch%%', generic_plans > 0 AND custom_plans = 0 "
            "FROM pg_prepared_statements WHERE statement LIKE '%%WITH tok AS%%' ORDER BY 1"
        )
        # a search too: its bounds are constants, its generic plan reads the indexes
        assert cursor.fetchall() == [(False, True), (False, True), (True, True)]


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer",
        "Bearer a b",
        "Basic dXNlcjpwYXNz",
        "Bearer unknown-token",
        "Token unknown-token",
    ],
)
def test_auth_failures_answer_as_drf(catalog, settings, header):
    headers = {"Authorization": header} if header else {}
    for path in ["/api/v1/services/", "/api/v1/services/playback-api/", "/api/v1/services/facets/"]:
        status, body, _h, _l = same(path, headers, settings, lean=False)
        assert status == 401 and "results" not in body


@pytest.mark.parametrize(
    "change",
    [
        {"revoked_at": timezone.now()},
        {"expires_at": timezone.now() - dt.timedelta(seconds=1)},
    ],
    ids=["revoked", "expired"],
)
def test_revoked_and_expired_tokens_answer_as_drf(catalog, squad, settings, change):
    token, raw = ApiToken.generate(squad=squad, name="gone", scopes=["admin"])
    headers = {"Authorization": f"Bearer {raw}"}
    assert get("/api/v1/services/", headers, settings)[3] == 1
    ApiToken.objects.filter(pk=token.pk).update(**change)
    for path in ["/api/v1/services/", "/api/v1/services/playback-api/", "/api/v1/services/facets/"]:
        status, body, _h, _l = same(path, headers, settings, lean=False)
        assert status == 401 and body["code"] == "authentication_failed"


def test_any_valid_token_reads_and_last_use_is_recorded(catalog, other_squad, settings):
    """The catalog read needs an authenticated principal, no scope (IsAuthenticated): a
    token of another squad with no scope reads like DRF lets it; its last use is recorded
    as BearerTokenAuthentication records it (at most once a minute)."""
    token, raw = ApiToken.generate(
        squad=other_squad,
        name="other",
        scopes=[],
        expires_at=timezone.now() + dt.timedelta(hours=1),
    )
    headers = {"Authorization": f"Token {raw}"}
    same("/api/v1/services/?owner=playback", headers, settings, lean=True)
    token.refresh_from_db()
    assert token.last_used_at is not None
    old = timezone.now() - dt.timedelta(minutes=5)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=old)
    get("/api/v1/services/playback-api/", headers, settings)
    token.refresh_from_db()
    assert token.last_used_at > old
    recent = token.last_used_at
    get("/api/v1/services/playback-api/", headers, settings)
    token.refresh_from_db()
    assert token.last_used_at == recent  # within the minute: no write


def test_session_cookie_accept_and_head_go_to_django(catalog, bearer, settings):
    for extra in [{"Accept": "text/html"}, {"Cookie": "sessionid=abc"}]:
        status, _b, headers, served = get("/api/v1/services/", {**bearer, **extra}, settings)
        assert status == 200 and served == 0, extra
    same("/api/v1/services/", {**bearer, "Accept": "application/json"}, settings, lean=True)
    settings.LEAN_READS = True
    before = lean_count()
    assert client.head("/api/v1/services/playback-api/", headers=bearer).status_code == 200
    assert (
        client.get("/api/v1/services/", headers={**bearer, "Host": "evil.example"}).status_code
        == 400
    )
    assert lean_count() == before


def test_throttled_token_gets_drfs_429(catalog, squad, settings):
    from django.core.cache import cache

    cache.clear()
    token, raw = ApiToken.generate(squad=squad, name="busy", scopes=[])
    ApiToken.objects.filter(pk=token.pk).update(rate_limit_per_minute=2)
    headers = {"Authorization": f"Bearer {raw}"}
    answers = [get("/api/v1/services/playback-api/", headers, settings) for _ in range(2)]
    assert [a[0] for a in answers] == [200, 200] and all(a[3] == 1 for a in answers)
    lean = get("/api/v1/services/playback-api/", headers, settings, lean=True)
    slow = get("/api/v1/services/playback-api/", headers, settings, lean=False)
    assert lean[0] == slow[0] == 429 and lean[3] == 0
    assert lean[1]["code"] == slow[1]["code"] == "throttled"
    assert "retry-after" in lean[2] and "retry-after" in slow[2]


def test_writes_are_visible_at_once(catalog, bearer, settings, squad, tribe):
    _token, raw = ApiToken.generate(squad=squad, name="writer", scopes=["catalog:write"])
    path = "/api/v1/services/playback-api/"
    writer = {"Authorization": f"Bearer {raw}"}
    patch = client.patch(path, json={"description": "Now with video"}, headers=writer)
    assert patch.status_code == 200
    assert get(path, bearer, settings)[1]["description"] == "Now with video"
    Service.objects.filter(slug="playback-api").update(lifecycle="deprecated")
    assert get(path, bearer, settings)[1]["lifecycle"] == "deprecated"
    facets = get("/api/v1/services/facets/?facet=lifecycle&owner=playback", bearer, settings)[1]
    assert {"value": "deprecated", "count": 1} in facets["facets"]["lifecycle"]
    Service.objects.filter(slug="playback-web").delete()
    body = get("/api/v1/services/?owner=playback", bearer, settings)[1]
    assert [r["slug"] for r in body["results"]] == ["playback-api"]
    squad.tribe = TribeFactory(slug="video")  # a write to the owner moves its services
    squad.save()
    body = get("/api/v1/services/?tribe=video", bearer, settings)[1]
    assert [r["slug"] for r in body["results"]] == ["playback-api"]
    assert get("/api/v1/services/?tribe=audio", bearer, settings)[1]["count"] == 2


def test_a_broken_persistent_connection_is_replaced(catalog, bearer, settings):
    get("/api/v1/services/playback-api/", bearer, settings)
    with connection.cursor() as cur:  # the server ends this session under the lean path
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
    import psycopg

    db = settings.DATABASES["default"]
    with psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"],
        dbname=db["NAME"],
        autocommit=True,
    ) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    status, body, _h, served = get("/api/v1/services/playback-api/", bearer, settings)
    assert status == 200 and body["slug"] == "playback-api" and served == 1


def test_a_read_left_to_django_is_counted_once_by_the_rate_limit(catalog, squad, settings):
    from django.core.cache import cache

    cache.clear()
    token, raw = ApiToken.generate(squad=squad, name="lost", scopes=[])
    ApiToken.objects.filter(pk=token.pk).update(rate_limit_per_minute=3)
    headers = {"Authorization": f"Bearer {raw}"}
    answers = [get("/api/v1/services/no-such/", headers, settings)[0] for _ in range(3)]
    assert answers == [404, 404, 404]  # not 429: each counted once, by DRF
    assert get("/api/v1/services/playback-api/", headers, settings)[0] == 429


def test_request_metrics_count_lean_reads_as_django_reads(catalog, bearer, settings):
    from django.urls import resolve
    from prometheus_client import REGISTRY

    path = "/api/v1/services/playback-api/"
    labels = {"view": resolve(path).view_name, "method": "GET", "status": "2xx"}

    def count():
        name = "backline_http_request_duration_seconds_count"
        return REGISTRY.get_sample_value(name, labels) or 0

    for lean in (True, False):
        before = count()
        assert get(path, bearer, settings, lean=lean)[0] == 200
        assert count() == before + 1, f"lean={lean}"


def test_a_pipeline_run_finishing_restitches_its_service(catalog, bearer, settings):
    """A run finished through the pipelines services (conditional UPDATEs, no model save) is
    in the lean detail's scorecard at once, as in the DRF view's."""
    service = Service.objects.get(slug="playback-api")
    run, _ = pipeline_services.trigger_run(
        service, actor=Actor.system("t"), ref=service.default_branch
    )
    assert pipeline_services.start_run(run.pk, worker="test:1") is not None
    path = "/api/v1/services/playback-api/"
    before = same(path, bearer, settings, lean=True)[1]["scorecard"]
    assert pipeline_services.finish_run(run.pk, RunStatus.SUCCEEDED)
    after = same(path, bearer, settings, lean=True)[1]["scorecard"]
    assert after["percent"] > before["percent"], (before, after)
    assert pipeline_services.finish_run(run.pk, RunStatus.FAILED) is False  # already finished


def _window_count(key_hash):
    from django.core.cache import cache

    client = cache._cache.get_client()
    keys = [k for k in client.keys("*") if f"rl:{key_hash[:32]}:".encode() in k]
    return sum(int(client.get(k)) for k in keys)


def test_a_read_declined_before_its_statement_is_counted_once(catalog, squad, settings):
    """The lean path counts a request in Redis while its SQL runs; one it leaves to Django
    before checking the token (a parameter it does not answer) is taken back out, and Django
    counts it: one count per request, as without the lean path."""
    from django.core.cache import cache

    cache.clear()
    token, raw = ApiToken.generate(squad=squad, name="odd", scopes=[])
    ApiToken.objects.filter(pk=token.pk).update(rate_limit_per_minute=3)
    headers = {"Authorization": f"Bearer {raw}"}
    answers = [get("/api/v1/services/?page=last", headers, settings) for _ in range(3)]
    assert [(a[0], a[3]) for a in answers] == [(400, 0)] * 3  # the pagination's own answer
    assert _window_count(token.key_hash) == 3
    assert get("/api/v1/services/playback-api/", headers, settings)[0] == 429
    assert _window_count(token.key_hash) == 4


def test_an_unknown_token_leaves_no_count(catalog, settings):
    from portal.models import hash_token

    for _ in range(2):
        assert get("/api/v1/services/", {"Authorization": "Bearer nope"}, settings)[0] == 401
    assert _window_count(hash_token("nope")) == 0


def test_headers_follow_the_settings_and_the_scheme(catalog, bearer, settings):
    """The lean answer's headers (computed once per Allow and scheme by the middlewares
    themselves) follow a settings change and an HTTPS request as Django's do."""
    path = "/api/v1/services/?owner=playback"
    before = same(path, bearer, settings, lean=True)[2]
    settings.CONTENT_SECURITY_POLICY = "default-src 'none'"
    after = same(path, bearer, settings, lean=True)[2]
    assert (
        after["content-security-policy"]
        == "default-src 'none'"
        != before["content-security-policy"]
    )
    secure = Client(application, use_cookies=False)
    answers = []
    for lean in (True, False):
        settings.LEAN_READS = lean
        resp = secure.get(path, headers=bearer, base_url="https://localhost")
        headers = {k.lower(): v for k, v in resp.headers.items()}
        assert headers.pop("content-length") == str(len(resp.get_data()))
        answers.append((resp.status_code, resp.json, headers))
    assert answers[0] == answers[1] and answers[0][0] == 200
