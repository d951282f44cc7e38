"""The ``scim2-tester`` checker (python-scim's RFC 7643/7644 compliance suite) against a live
Backline (gunicorn, as ``make run`` serves it): no check may fail."""

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

from tests.identity.scim_helpers import scim_token
from tests.live_portal import portal_server  # noqa: F401  (fixture)


def test_scim2_tester_reports_no_failure(portal_server, squad):  # noqa: F811
    raw = scim_token(squad)
    http = httpx2.Client(
        base_url=f"{portal_server.url}/scim/v2",
        headers={"Authorization": f"Bearer {raw}"},
        timeout=30,
    )
    client = SyncSCIMClient(http)
    results = check_server(client)
    failed = [r for r in results if r.status in (Status.ERROR, Status.CRITICAL)]
    by_status = {}
    for r in results:
        by_status[r.status.name] = by_status.get(r.status.name, 0) + 1
    report = "\n".join(
        f"{r.status.name} {r.resource_type or ''} {r.title}: {r.reason}" for r in failed
    )
    skipped = [f"{r.title}: {r.reason}" for r in results if r.status == Status.SKIPPED]
    print("scim2-tester:", by_status, "skipped:", skipped)  # noqa: T201 - the figures quoted
    assert not failed, f"{by_status}\n{report}\n--- server ---\n{portal_server.output(6000)}"
    assert by_status.get("SUCCESS", 0) >= 100, by_status  # the suite really ran (135 in 0.5.2)
    # and every call was logged for the directory sync page
    from identity.models import ScimCall

    assert ScimCall.objects.count() >= by_status["SUCCESS"]
