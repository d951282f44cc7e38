"""``portal.claims.update_rows``: a claimed batch's rows written in one statement, each with its
own values (NULLs, JSON, times), the other rows and fields untouched, the write announced."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from metrics.models import ScrapeTarget, Series
from monitoring.models import AlertRule
from portal import claims
from portal.cachegen import rows_changed
from tests.factories import ServiceFactory


@pytest.mark.django_db
def test_update_rows_writes_each_rows_own_values_in_one_statement(squad):
    service = ServiceFactory(owner=squad)
    rules = [
        AlertRule.objects.create(service=service, name=f"r{k}", threshold=1, last_value=5)
        for k in range(4)
    ]
    target = ScrapeTarget.objects.create(service=service, url="http://127.0.0.1:9/metrics")
    series = Series.objects.create(target=target, service=service, name="x", key="k")
    rules[0].last_value, rules[0].last_error = None, "down"  # a NULL among floats
    rules[1].last_value, rules[1].last_error = 2.5, ""
    rules[2].last_value, rules[2].name = 7.0, "renamed in memory only"
    heard = []

    def listen(sender, fields, pks, **kwargs):
        heard.append((sender, fields, sorted(pks)))

    rows_changed.connect(listen, sender=AlertRule)
    try:
        with CaptureQueriesContext(connection) as ctx:
            assert claims.update_rows(rules[:3], ["last_value", "last_error"]) == 3
    finally:
        rows_changed.disconnect(listen, sender=AlertRule)
    assert len(ctx.captured_queries) == 1
    got = {r.pk: r for r in AlertRule.objects.all()}
    assert (got[rules[0].pk].last_value, got[rules[0].pk].last_error) == (None, "down")
    assert (got[rules[1].pk].last_value, got[rules[1].pk].last_error) == (2.5, "")
    assert got[rules[2].pk].last_value == 7.0 and got[rules[2].pk].name == "r2"
    assert got[rules[3].pk].last_value == 5  # not in the batch
    assert heard == [(AlertRule, {"last_value", "last_error"}, sorted(r.pk for r in rules[:3]))]
    # JSON and times
    when = timezone.now() - timedelta(minutes=3)
    series.resets, target.last_scrape_at, target.health = [[1.5, 10.0]], when, "up"
    claims.update_rows([series], ["resets"])
    claims.update_rows([target], ["last_scrape_at", "health"])
    assert Series.objects.get(pk=series.pk).resets == [[1.5, 10.0]]
    target.refresh_from_db()
    assert (target.last_scrape_at, target.health) == (when, "up")
    assert claims.update_rows([], ["health"]) == 0


@pytest.mark.django_db
def test_update_rows_round_trips_json_nulls_and_times_row_by_row(squad):
    """The one array per column keeps each row's JSON (nested, quotes, unicode, empty), NULLs
    (a column all NULL, NULL among values) and aware times as they were in memory."""
    service = ServiceFactory(owner=squad)
    target = ScrapeTarget.objects.create(service=service, url="http://127.0.0.1:9/metrics")
    series = [
        Series.objects.create(target=target, service=service, name="x", key=f"k{k}")
        for k in range(4)
    ]
    resets = [[], [[1.5, 10.0], [2.0, 20.5]], [[3.0, 1e-9]], [[4.25, 0.1]]]
    labels = [{}, {"a": 'q"uote\\d', "b": "é ✓"}, {"nested": {"x": [1, None, "y"]}}, {"k": ""}]
    created = [None, None, 1700000000.125, None]  # NULL among floats
    for s, r, lab, c in zip(series, resets, labels, created, strict=True):
        s.resets, s.labels, s.created, s.last_raw = r, lab, c, None  # last_raw: all NULL
        s.last_t = 1700000001.5
    fields = ["resets", "labels", "created", "last_raw", "last_t"]
    with CaptureQueriesContext(connection) as ctx:
        assert claims.update_rows(series, fields) == 4
    assert len(ctx.captured_queries) == 1
    got = {s.pk: s for s in Series.objects.filter(target=target)}
    for s, r, lab, c in zip(series, resets, labels, created, strict=True):
        row = got[s.pk]
        assert (row.resets, row.labels, row.created, row.last_raw) == (r, lab, c, None)
        assert row.last_t == 1700000001.5
    when = [timezone.now() - timedelta(minutes=k, microseconds=k) for k in range(2)]
    other = ScrapeTarget.objects.create(service=service, url="http://127.0.0.1:9/other")
    target.last_scrape_at, other.last_scrape_at = when[0], None
    target.last_error, other.last_error = "line 1\nline 2 'quoted' {brace}", ""
    assert claims.update_rows([target, other], ["last_scrape_at", "last_error"]) == 2
    target.refresh_from_db()
    other.refresh_from_db()
    assert (target.last_scrape_at, target.last_error) == (
        when[0],
        "line 1\nline 2 'quoted' {brace}",
    )
    assert (other.last_scrape_at, other.last_error) == (None, "")
