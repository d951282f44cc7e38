"""Backstage descriptors in and out: the import form and the YAML export."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import render

from portal.actors import Actor
from portal.limits import body_limit
from squads import backstage
from squads.backstage.sources import MAX_SOURCE_BYTES


@body_limit(MAX_SOURCE_BYTES)  # uploaded files up to the import's own 10 MB
@login_required
def catalog_import(request):
    """Upload Backstage descriptor files; all-or-nothing, with every error listed."""
    report = errors = None
    if request.method == "POST":
        files = request.FILES.getlist("files")
        text = request.POST.get("yaml", "").strip()
        sources = [(f.name, f.read().decode("utf-8", errors="replace")) for f in files]
        if text:
            sources.append(("pasted.yaml", text))
        if not sources:
            messages.error(request, "Choose at least one YAML file or paste YAML.")
        else:
            try:
                report = backstage.import_catalog(
                    sources, Actor.from_request(request), dry_run=bool(request.POST.get("dry_run"))
                )
            except backstage.ImportFailed as exc:
                errors = exc.errors
            except PermissionDenied as exc:
                messages.error(request, str(exc))
    return render(
        request,
        "squads/catalog_import.html",
        {"report": report, "errors": errors},
        status=400 if errors else 200,
    )


catalog_import.nav_section = "catalog"


@login_required
def catalog_export(request):
    resp = HttpResponse(backstage.export_catalog(), content_type="application/yaml")
    resp["Content-Disposition"] = 'attachment; filename="catalog-info.yaml"'
    return resp
