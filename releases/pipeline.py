"""A pipeline step that starts a release and waits for its outcome.

In ``backline.yml``::

    stages:
      - name: deploy
        steps:
          - name: canary
            release: {environment: production}     # optional: version (default: the commit)
            timeout: 2h

The runner calls ``run_release_step`` instead of a subprocess for such a step. It starts the
release (door ``pipeline``, linked to the run) as the run's starter (``portal.principal``: the
person with their squad rights now, the token with its scopes; a ``pipelines:run``-only token
cannot start a release this way, and the step fails saying so), writes the release's progress to the run log,
and finishes when the release does: succeeded → the step succeeds; failed / aborted → the step
fails. Canceling the run aborts the release (traffic back to stable); the step's timeout
aborts it too. If the worker dies, the release goes on by itself (beat drives it) and the run
is reaped as lost like any other.
"""

import time

from portal.actors import Actor
from portal.errors import DomainError
from portal.executor import ExecResult
from portal.principal import actor_for
from releases import services, strategy
from releases.models import FINAL_RELEASE, Release, ReleaseStatus

POLL_SECONDS = 1.0


def _result(code, started, canceled=False, timed_out=False, written=0, reason=""):
    return ExecResult(
        limit_reason=reason,
        exit_code=code,
        timed_out=timed_out,
        canceled=canceled,
        truncated=False,
        duration=time.monotonic() - started,
        output_bytes=written,
    )


class _Log:
    """The run log of the step, counting the bytes written to it."""

    def __init__(self, on_output):
        self.on_output = on_output
        self.written = 0

    def say(self, text):
        self.written += len(text.encode())
        self.on_output(text)


def run_release_step(
    run, step, step_spec, *, on_output, should_cancel, on_heartbeat, heartbeat_every=5.0
):
    started = time.monotonic()
    log = _Log(on_output)
    spec = step_spec.get("release") or {}
    version = spec.get("version") or (run.commit_sha or run.requested_commit)[:12] or run.ref
    try:
        # the run's starter, with their rights now (a token's scopes): never the system
        actor = actor_for(run, squad=run.service.owner, door="pipeline")
        release = services.create_release(
            run.service,
            actor=actor,
            environment=spec.get("environment", ""),
            version=version,
            commit=run.commit_sha,
            trigger="pipeline",
            pipeline_run=run,
        )
    except DomainError as exc:
        log.say(f"✖ cannot start the release: {exc.text}\n")
        why = f"cannot start the release: {exc.text}"
        return _result(1, started, written=log.written, reason=why)
    log.say(
        f"release #{release.pk}: {run.service.slug} {version} → {release.environment.name} "
        f"({len(release.strategy)} steps, strategy: {release.strategy_source})\n"
    )
    # canceling the run or its timeout aborts the release (back to stable) whoever started it:
    # the run's own safety net, for the owning squad only
    guard = Actor(
        door="pipeline", system_name=f"pipeline {run}", only_squad=run.service.owner_id or 0
    )
    return _follow(release, step, guard, started, log, should_cancel, on_heartbeat, heartbeat_every)


def _follow(release, step, actor, started, log, should_cancel, on_heartbeat, heartbeat_every):
    """Write the release's progress until it ends, or abort it on cancel / timeout."""
    seen = None
    last_beat = time.monotonic()
    while True:
        r = Release.objects.get(pk=release.pk)
        seen = _report_progress(r, seen, log)
        if r.status in FINAL_RELEASE:
            ok = r.status == ReleaseStatus.SUCCEEDED
            log.say("✔ release succeeded\n" if ok else f"✖ release {r.status}: {r.message}\n")
            return _result(0 if ok else 1, started, written=log.written)
        timeout = step.timeout
        cancel = should_cancel()
        timed_out = bool(timeout and time.monotonic() - started > timeout)
        if cancel or timed_out:
            why = "the pipeline run was canceled" if cancel else f"timed out after {timeout:g}s"
            try:
                services.abort_release(r, actor=actor, reason=why)
                log.say(f"■ release #{r.pk} aborted: {why}; traffic back to stable\n")
            except DomainError:
                pass
            return _result(None, started, canceled=cancel, timed_out=timed_out, written=log.written)
        if time.monotonic() - last_beat >= heartbeat_every:
            on_heartbeat()
            last_beat = time.monotonic()
        time.sleep(POLL_SECONDS)


def _report_progress(r, seen, log):
    """A log line when the release's state moved since ``seen``; returns the state now."""
    applying = (r.driver_call or {}).get("weight")
    now_state = (r.status, r.step_index, r.weight, applying)
    if now_state != seen:
        step_text = strategy.describe(r.current_step) if r.current_step else "—"
        log.say(
            f"  {r.status:<11} step {min(r.step_index + 1, len(r.strategy))}/"
            f"{len(r.strategy)} ({step_text}), canary {r.weight} %"
            + (f", applying {applying} %" if applying is not None else "")
            + (f" — {r.message}" if r.message else "")
            + "\n"
        )
    return now_state
