BEAT_SCHEDULE = {
    "portal-retry-event-deliveries": {
        "task": "portal.tasks.retry_due_deliveries",
        "schedule": 15.0,
    },
    "portal-purge-idempotency": {
        "task": "portal.tasks.purge_idempotency_records",
        "schedule": 3600.0,
    },
}
