BEAT_SCHEDULE = {
    "infra-reap-lost-runs": {"task": "infra.tasks.reap_lost_runs", "schedule": 15.0},
    "infra-drift-checks": {"task": "infra.tasks.schedule_drift_checks", "schedule": 60.0},
}
