from django.urls import NoReverseMatch, reverse

from portal import sandbox as sb
from portal.registry import registry


def _nav_items(user):
    admin = bool(getattr(user, "is_staff", False) or getattr(user, "is_superuser", False))
    items = []
    for item in registry.nav:  # registered by each app's AppConfig.ready()
        if item.admin_only and not admin:
            continue
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
    return {"nav_items": _nav_items(getattr(request, "user", None)), "nav_section": section}


def sandbox(request):
    """The warning run pages show when steps and terraform run unsandboxed."""
    return {"sandbox_off_warning": "" if sb.enabled() else sb.off_warning()}
