from django.urls import NoReverseMatch, reverse

from portal import sandbox as sb
from portal.registry import registry


def _nav_items():
    items = []
    for item in registry.nav:  # registered by each app's AppConfig.ready()
        try:
            items.append((item.label, reverse(item.url_name), item.section))
        except NoReverseMatch:
            continue
    return items


def nav(request):
    section = ""
    match = getattr(request, "resolver_match", None)
    if match is not None:
        section = getattr(match.func, "nav_section", "") or registry.nav_sections.get(
            match.app_name or "", ""
        )
    return {"nav_items": _nav_items(), "nav_section": section}


def sandbox(request):
    """The warning run pages show when steps and terraform run unsandboxed."""
    return {"sandbox_off_warning": "" if sb.enabled() else sb.off_warning()}
