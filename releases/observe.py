"""Mirroring what the deployer reports onto active releases, outside any row lock.

For drivers that observe (``kubernetes``, ``argo-rollouts``, ``haproxy``) beat and the worker
after each driver call read ``status()`` and store it on ``Release.observed``; the release page
shows it (replicas and images per track, the Rollout's phase, steps and AnalysisRuns). A
deployment that stopped progressing (``Progressing`` = ``ProgressDeadlineExceeded``) pauses a
progressing release with the deployer's own reason, so a person decides: Promote, Abort or
Retry after fixing it.
"""

import logging

from django.db import transaction
from django.utils import timezone

from releases.controller import DRIVEN_FIELDS, note, transition
from releases.drivers import DRIVERS, DriverError, get_driver
from releases.models import ACTIVE_RELEASE, Release, ReleaseStatus

log = logging.getLogger(__name__)
MAX_PER_TICK = 500


def observe(release_id: int) -> dict:
    r = Release.objects.select_related("service", "environment").filter(pk=release_id).first()
    if r is None:
        return {}
    try:
        driver = get_driver(r.environment)
    except DriverError:
        return {}
    if not driver.observes:
        return {}
    at = timezone.now().isoformat()
    try:
        st = driver.status(r)
        seen = {"weight": st.weight, "healthy": st.healthy, "detail": st.detail, "at": at}
    except DriverError as exc:
        seen = {"error": str(exc)[:500], "at": at}
    Release.objects.filter(pk=r.pk).update(observed=seen)
    stuck = (seen.get("detail") or {}).get("stuck")
    if stuck and r.status == ReleaseStatus.PROGRESSING:
        _pause_stuck(r.pk, str(stuck))
    return seen


def _pause_stuck(release_id: int, reason: str) -> None:
    with transaction.atomic():
        qs = Release.objects.select_for_update(of=("self",), no_key=True).select_related(
            "service__owner"
        )
        r = qs.filter(pk=release_id).first()
        if r is None or r.status != ReleaseStatus.PROGRESSING:
            return
        message = f"the deployment is not progressing: {reason}"[:2000]
        r.pause_until = None
        transition(r, ReleaseStatus.PAUSED, message)
        note(r, "driver", message)
        r.save(update_fields=DRIVEN_FIELDS)


def observe_all() -> int:
    drivers = [name for name, cls in DRIVERS.items() if cls.observes]
    ids = list(
        Release.objects.filter(status__in=ACTIVE_RELEASE, environment__driver__in=drivers)
        .order_by("pk")
        .values_list("pk", flat=True)[:MAX_PER_TICK]
    )
    for pk in ids:
        try:
            observe(pk)
        except Exception:  # noqa: BLE001 - one broken deployer must not stop the others
            log.exception("release %s: observing failed", pk)
    return len(ids)
