"""Names shared by the importer and the exporter."""

import re

from squads.models import Lifecycle

ENTITY_KINDS = ("group", "user", "domain", "system", "api", "resource", "component")
REPORT_KINDS = (
    "tribe",
    "squad",
    "person",
    "domain",
    "system",
    "api",
    "resource",
    "component",
    "other",  # kinds Backline does not model, stored as written
)
LIFECYCLES = [c.value for c in Lifecycle]
TAG_RE = re.compile(r"^[a-z0-9:+#]+(-[a-z0-9:+#]+)*$")
TEAM_TYPES = {"team"}
# Annotations that map onto Service fields (kept out of Service.annotations, written back on export).
ANN_TIER = "backline.io/tier"
ANN_RUNBOOK = "backline.io/runbook"
ANN_ONCALL = "backline.io/oncall"
ANN_REPO = "backline.io/repository"
ANN_BRANCH = "backline.io/default-branch"
ANN_GITHUB = "github.com/project-slug"
ANN_CHAT = "backline.io/chat-channel"
ANN_LEAD_OF = "backline.io/lead-of"
ANN_PO_OF = "backline.io/product-owner-of"
SERVICE_MAPPED_ANNOTATIONS = (ANN_TIER, ANN_RUNBOOK, ANN_ONCALL, ANN_REPO, ANN_BRANCH, ANN_GITHUB)
BATCH = 1000
