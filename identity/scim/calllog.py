"""The SCIM call log the directory sync page reads: one row per request, the newest
``KEEP`` kept (older rows are pruned as new ones come)."""

from __future__ import annotations

import time
from typing import Any

from identity.models import ScimCall

KEEP = 5000
PRUNE_EVERY = 100


def _text(value: Any, limit: int) -> str:
    """As stored: PostgreSQL text cannot hold NUL, which a SCIM error may echo from the input."""
    return str(value or "").replace("\x00", "\ufffd")[:limit]


def record(request, status: int, body: dict[str, Any] | None, token, started: float) -> ScimCall:
    failed = status >= 400 and isinstance(body, dict)
    call = ScimCall.objects.create(
        method=_text(request.method, 10),
        path=_text(request.get_full_path(), 500),
        status=status,
        scim_type=_text((body or {}).get("scimType"), 40) if failed else "",
        error=_text((body or {}).get("detail"), 2000) if failed else "",
        token=token,
        token_label=f"{token.name}@{token.squad.slug}" if token is not None else "",
        ip=request.META.get("REMOTE_ADDR") or None,
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    if call.pk % PRUNE_EVERY == 0:
        ScimCall.objects.filter(pk__lte=call.pk - KEEP).delete()
    return call
