"""A SCIM error that echoes a NUL from the request is logged (as U+FFFD), not a 500."""

from django.test import RequestFactory

from identity.models import ScimCall
from identity.scim.calllog import record


def test_nul_in_an_echoed_error_is_stored(db):
    request = RequestFactory().get("/scim/v2/Users", {"filter": 'userName eq "a\x00b"'})
    body = {"scimType": "invalidFilter", "detail": 'bad filter: userName eq "a\x00b"'}
    call = record(request, 400, body, None, 0.0)
    stored = ScimCall.objects.get(pk=call.pk)
    assert "\x00" not in stored.error and "a\ufffdb" in stored.error
    assert stored.status == 400 and stored.scim_type == "invalidFilter"
