"""The service fields each door handles (one list each, shared by forms, API, importer and the
stitched documents)."""

# what a catalog row shows of a service (besides its slug and tags)
SERVICE_ROW_FIELDS = (
    "name",
    "description",
    "owner",
    "system",
    "type",
    "lifecycle",
    "tier",
    "repository_url",
)
# what a person edits on the service page
SERVICE_PAGE_FIELDS = (*SERVICE_ROW_FIELDS, "default_branch", "runbook_url", "oncall")
# what a catalog-info.yaml describes (the Backstage importer writes these)
SERVICE_DESCRIPTOR_FIELDS = (*SERVICE_PAGE_FIELDS, "links", "annotations")
# every field create_service / update_service accept (besides tags and APIs)
SERVICE_FIELDS = (*SERVICE_DESCRIPTOR_FIELDS, "webhook_secret", "metrics_urls")
# the row the API's service list returns (squads.documents, ServiceListSerializer)
LIST_FIELDS = ("slug", *SERVICE_ROW_FIELDS, "tags", "scorecard", "url", "updated_at")
