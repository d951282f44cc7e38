from django.urls import NoReverseMatch, reverse

NAV = [
    ("Catalog", "squads:service_list", "catalog"),
    ("Squads", "squads:squad_list", "squads"),
    ("Pipelines", "pipelines:run_list", "pipelines"),
    ("Releases", "pipelines:release_list", "releases"),
    ("Infrastructure", "infra:workspace_list", "infra"),
    ("Dashboards", "monitoring:dashboard_index", "dashboards"),
    ("Alerts", "monitoring:alert_list", "alerts"),
]


def _nav_items():
    items = []
    for label, name, section in NAV:
        try:
            items.append((label, reverse(name), section))
        except NoReverseMatch:
            continue
    return items


def nav(request):
    section = ""
    match = getattr(request, "resolver_match", None)
    if match is not None:
        section = getattr(match.func, "nav_section", "") or {
            "squads": "catalog",
            "pipelines": "pipelines",
            "infra": "infra",
            "monitoring": "dashboards",
        }.get(match.app_name or "", "")
    return {"nav_items": _nav_items(), "nav_section": section}


def sandbox(request):
    """The warning run pages show when steps and terraform run unsandboxed."""
    from portal import sandbox as sb

    return {"sandbox_off_warning": "" if sb.enabled() else sb.off_warning()}
