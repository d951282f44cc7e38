"""The SCIM call log the directory sync page reads: one row per request, the newest
``KEEP`` kept (older rows are pruned as new ones come)."""

from __future__ import annotations

import time
from typing import Any

from identity.models import ScimCall

KEEP = 5000
PRUNE_EVERY = 100


def record(request, status: int, body: dict[str, Any] | None, token, started: float) -> ScimCall:
    failed = status >= 400 and isinstance(body, dict)
    call = ScimCall.objects.create(
        method=(request.method or "")[:10],
        path=request.get_full_path()[:500],
        status=status,
        scim_type=str((body or {}).get("scimType") or "")[:40] if failed else "",
        error=str((body or {}).get("detail") or "")[:2000] if failed else "",
        token=token,
        token_label=f"{token.name}@{token.squad.slug}" if token is not None else "",
        ip=request.META.get("REMOTE_ADDR") or None,
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    if call.pk % PRUNE_EVERY == 0:
        ScimCall.objects.filter(pk__lte=call.pk - KEEP).delete()
    return call
