"""The GitHub check run of a pipeline run (``pipelines.github.checks`` keeps it in step)."""

from django.db import models


class GitHubCheck(models.Model):
    """A run started by a GitHub push or pull request, reported as check run
    ``backline/<service>`` on ``head_sha`` of ``repository`` (``owner/name``)."""

    run = models.OneToOneField(
        "pipelines.PipelineRun", on_delete=models.CASCADE, related_name="github_check"
    )
    repository = models.CharField(max_length=200)
    installation_id = models.BigIntegerField(default=0)
    head_sha = models.CharField(max_length=64)
    pull_request = models.PositiveIntegerField(null=True, blank=True, db_index=True)
    name = models.CharField(max_length=200)
    check_id = models.BigIntegerField(null=True, blank=True)  # GitHub's id, once created
    sent = models.CharField(max_length=40, blank=True)  # the last state GitHub got
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)  # the last failed attempt (cleared by a good one)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "pipelines"
        indexes = [models.Index(fields=["repository", "pull_request"])]

    def __str__(self):
        return f"{self.name} on {self.repository}@{self.head_sha[:10]}"


class ActionsRun(models.Model):
    """A GitHub Actions workflow run of a service's repository (``github.com/project-slug``),
    as beat last saw it (``pipelines.github.actions``): shown on the service and pipeline
    pages, counted by the scorecard and DORA."""

    service = models.ForeignKey(
        "squads.Service", on_delete=models.CASCADE, related_name="actions_runs"
    )
    repository = models.CharField(max_length=200)
    run_id = models.BigIntegerField()  # GitHub's id of the run
    workflow_id = models.BigIntegerField(default=0)
    workflow_name = models.CharField(max_length=200, blank=True)
    workflow_file = models.CharField(max_length=200, blank=True)  # ci.yml of its path
    run_number = models.PositiveIntegerField(default=0)
    run_attempt = models.PositiveIntegerField(default=1)
    event = models.CharField(max_length=50, blank=True)
    status = models.CharField(max_length=20)  # queued, in_progress, completed, waiting, ...
    conclusion = models.CharField(max_length=20, blank=True)  # success, failure, cancelled, ...
    head_branch = models.CharField(max_length=255, blank=True)
    head_sha = models.CharField(max_length=64, blank=True)
    title = models.CharField(max_length=300, blank=True)  # display_title
    html_url = models.URLField(max_length=500, blank=True)
    run_started_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "pipelines"
        ordering = ["service", "-run_started_at", "-run_id"]
        constraints = [
            models.UniqueConstraint(fields=["service", "run_id"], name="actions_run_unique")
        ]

    def __str__(self):
        return f"{self.workflow_name or self.workflow_file} #{self.run_number}"

    @property
    def state(self) -> str:
        """One word for the badge: the conclusion once completed, else the status."""
        return (self.conclusion or self.status) if self.status == "completed" else self.status

    @property
    def duration(self) -> float | None:
        """Seconds from ``run_started_at`` to ``updated_at`` (the last change of a finished
        run), as GitHub's own run page counts it."""
        if self.status != "completed" or not (self.run_started_at and self.updated_at):
            return None
        return max(0.0, (self.updated_at - self.run_started_at).total_seconds())


class ActionsPoll(models.Model):
    """The last poll of a service's workflow runs: when, and what went wrong (kept until a
    poll succeeds; the runs stay as the last good poll left them)."""

    service = models.OneToOneField(
        "squads.Service", on_delete=models.CASCADE, related_name="actions_poll"
    )
    repository = models.CharField(max_length=200, blank=True)
    workflows = models.CharField(max_length=500, blank=True)  # the workflows named then
    polled_at = models.DateTimeField(null=True, blank=True)
    ok_at = models.DateTimeField(null=True, blank=True)  # the last poll that succeeded
    error = models.TextField(blank=True)

    class Meta:
        app_label = "pipelines"

    def __str__(self):
        return f"GitHub Actions poll of {self.service}"
