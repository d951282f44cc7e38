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
