from django.conf import settings

BEAT_SCHEDULE = {
    "pipelines-reap-lost-runs": {
        "task": "pipelines.tasks.reap_lost_runs",
        "schedule": settings.PIPELINES_REAP_EVERY_SECONDS,
    },
    "pipelines-expire-artifacts": {"task": "pipelines.tasks.expire_artifacts", "schedule": 3600.0},
    "pipelines-run-schedules": {"task": "pipelines.tasks.run_schedules", "schedule": 60.0},
    "pipelines-expire-approvals": {
        "task": "pipelines.tasks.expire_approvals",
        "schedule": settings.PIPELINES_APPROVAL_SWEEP_SECONDS,
    },
    "pipelines-sync-github-actions": {
        "task": "pipelines.github.tasks.sync_actions_runs",
        "schedule": settings.GITHUB_ACTIONS_SYNC_SECONDS,
    },
    "pipelines-sync-jenkins": {
        "task": "pipelines.tasks.sync_jenkins_builds",
        "schedule": settings.JENKINS_SYNC_SECONDS,
    },
}
