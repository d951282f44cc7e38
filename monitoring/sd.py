"""Prometheus HTTP service discovery from the catalog (``GET /api/v1/prometheus/sd``).

Prometheus config::

    scrape_configs:
      - job_name: backline
        http_sd_configs:
          - url: http://backline.example/api/v1/prometheus/sd
            authorization: {type: Bearer, credentials: <a Backline API token>}

(spell ``type: Bearer`` out: some Prometheus builds send the bare token otherwise).

Prometheus does these scrapes itself, so the outbound URL guard cannot pin its connections; a
target the guard refuses by its scheme or by an address written in the URL is left out (no DNS
lookup here; ``metrics_urls`` were checked with one when saved).
"""

from urllib.parse import urlsplit

from metrics.scrape import normalise_entries
from portal import urlguard
from squads.models import Service


def sd_targets() -> list[dict]:
    groups = []
    services = (
        Service.objects.exclude(metrics_urls=[])
        .select_related("owner", "owner__tribe")
        .order_by("slug")
    )
    for service in services:
        for entry in normalise_entries(service.metrics_urls):
            parts = urlsplit(entry["url"])
            if not parts.hostname or _refused(entry["url"]):
                continue
            host = parts.netloc.rsplit("@", 1)[-1]
            labels = {
                "__scheme__": parts.scheme or "http",
                "__metrics_path__": parts.path or "/metrics",
                "service": service.slug,
                "squad": service.owner.slug if service.owner else "",
                "tribe": service.owner.tribe.slug if service.owner and service.owner.tribe else "",
                "tier": str(service.tier),
                "lifecycle": service.lifecycle,
            }
            if entry["track"]:
                labels["track"] = entry["track"]
            if parts.query:
                for pair in parts.query.split("&"):
                    k, _, v = pair.partition("=")
                    labels[f"__param_{k}"] = v
            groups.append({"targets": [host], "labels": labels})
    return groups


def _refused(url: str) -> bool:
    try:
        urlguard.check_url(url, use="scrape", lookup=False)
    except urlguard.FetchError:
        return True
    return False
