"""The ``jenkins:`` step (see ``pipelines.jenkins``): trigger, follow, succeed or fail with it."""

import time

from django.conf import settings

from pipelines.jenkins import Jenkins, JenkinsError, client
from portal.executor import ExecResult


def _result(code, started, *, canceled=False, timed_out=False, written=0):
    # ExecResult(exit_code, timed_out, canceled, truncated, duration, output_bytes)
    return ExecResult(code, timed_out, canceled, False, time.monotonic() - started, written)


class _Watch:
    def __init__(self, step, should_cancel, on_heartbeat, heartbeat_every):
        self.started = time.monotonic()
        self.timeout = step.timeout
        self.should_cancel, self.on_heartbeat = should_cancel, on_heartbeat
        self.every, self.last_beat = heartbeat_every, time.monotonic()

    def tick(self) -> str:
        """'' to go on; 'canceled' or 'timed out' to stop. Heartbeats and sleeps a poll."""
        if self.should_cancel():
            return "canceled"
        if self.timeout and time.monotonic() - self.started > self.timeout:
            return "timed out"
        if time.monotonic() - self.last_beat >= self.every:
            self.on_heartbeat()
            self.last_beat = time.monotonic()
        time.sleep(settings.JENKINS_POLL_SECONDS)
        return ""


def run_jenkins_step(
    run, step, step_spec, *, on_output, should_cancel, on_heartbeat, heartbeat_every=5.0
):
    spec = step_spec.get("jenkins") or {}
    watch = _Watch(step, should_cancel, on_heartbeat, heartbeat_every)
    job, params = spec.get("job", ""), dict(spec.get("parameters") or {})
    try:
        jenkins = client()
        queue = jenkins.trigger(job, params)
        on_output(f"jenkins: {job} queued ({queue})\n")
        build_url, stop = _await_build(jenkins, queue, watch)
        if stop:
            return _stopped(None, stop, watch, on_output, jenkins)
        on_output(f"jenkins: build {build_url}\n")
        stop = _follow(jenkins, build_url, watch, on_output)
        if stop:
            return _stopped(build_url, stop, watch, on_output, jenkins)
        result = jenkins.build(build_url).get("result") or "UNKNOWN"
    except JenkinsError as exc:
        on_output(f"✖ jenkins: {exc}\n")
        return _result(1, watch.started)
    on_output(f"{'✔' if result == 'SUCCESS' else '✖'} jenkins: {job} {result}\n")
    return _result(0 if result == "SUCCESS" else 1, watch.started)


def _await_build(jenkins: Jenkins, queue: str, watch: _Watch) -> tuple[str, str]:
    while True:
        url = jenkins.build_of(queue)
        if url:
            return url, ""
        stop = watch.tick()
        if stop:
            return "", stop


def _follow(jenkins: Jenkins, build_url: str, watch: _Watch, on_output) -> str:
    """Stream the console until Jenkins says there is no more; '' or why it stopped."""
    start = 0
    while True:
        text, start, more = jenkins.progressive(build_url, start)
        if text:
            on_output(text)
        if not more:
            return ""
        stop = watch.tick()
        if stop:
            return stop


def _stopped(build_url, why, watch, on_output, jenkins):
    if build_url:
        try:
            jenkins.stop(build_url)
            on_output(f"■ jenkins: build stopped ({why})\n")
        except JenkinsError as exc:
            on_output(f"⚠ jenkins: could not stop the build: {exc}\n")
    return _result(None, watch.started, canceled=why == "canceled", timed_out=why == "timed out")
