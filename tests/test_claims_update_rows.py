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
