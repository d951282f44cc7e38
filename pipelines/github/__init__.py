"""GitHub for pipelines (issue 18): check runs reported for runs, pull-request builds."""
