"""HTML pages: workspace list and page, run page with live log and plan summary, buttons.
Each button calls one function of ``infra.services``."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import OuterRef, Subquery
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from infra import services
from infra.board import board_section
from infra.filters import WorkspaceFilter
from infra.models import (
    ACTIVE,
    DriftStatus,
    RunStatus,
    TerraformRun,
    Variable,
    Workspace,
)
from portal import logviews
from portal.actors import Actor
from portal.errors import DomainError
from portal.listing import render_list
from portal.urlsecrets import redact_credentials
from portal.web import add_form_errors, board_view, domain_error_response
from squads.models import Service, Squad

LOG_PAGE_BYTES = logviews.LOG_PAGE_BYTES


def _can_write(request, ws) -> bool:
    return Actor.from_request(request).can(services.SCOPE, ws.owner)


@login_required
def workspace_list(request):
    latest = TerraformRun.objects.filter(workspace=OuterRef("pk"), kind="plan").order_by(
        "-created_at", "-id"
    )
    qs = (
        Workspace.objects.select_related("owner", "lock_run")
        .prefetch_related("services")
        .annotate(
            latest_id=Subquery(latest.values("pk")[:1]),
            latest_number=Subquery(latest.values("number")[:1]),
            latest_status=Subquery(latest.values("status")[:1]),
        )
    )
    flt = WorkspaceFilter(request.GET, queryset=qs)
    counts = {
        "total": Workspace.objects.count(),
        "drifted": Workspace.objects.filter(drift_status=DriftStatus.DRIFTED).count(),
        "locked": Workspace.objects.filter(lock_run__isnull=False).count(),
        "awaiting": TerraformRun.objects.filter(status=RunStatus.PLANNED).count(),
    }
    return render_list(
        request,
        "infra/workspace_list.html",
        flt,
        per_page=50,
        rows=flt.qs.order_by("name"),
        drift_choices=DriftStatus.choices,
        counts=counts,
        pager_target="#ws-results",
    )


class WorkspaceForm(forms.Form):
    slug = forms.SlugField(max_length=100, help_text="Lower-case letters, digits and dashes")
    name = forms.CharField(max_length=200)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    owner = forms.ModelChoiceField(queryset=Squad.objects.none(), to_field_name="slug")
    services = forms.ModelMultipleChoiceField(
        queryset=Service.objects.none(), to_field_name="slug", required=False
    )
    source = forms.ChoiceField(choices=Workspace.Source.choices)
    main_tf = forms.CharField(
        label="main.tf",
        widget=forms.Textarea(attrs={"rows": 14, "spellcheck": "false"}),
        required=False,
    )
    repository_url = forms.CharField(max_length=500, required=False)
    ref = forms.CharField(max_length=255, required=False, initial="main")
    path = forms.CharField(max_length=500, required=False)
    auto_apply = forms.BooleanField(required=False)
    drift_checks = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args, actor, editing=None, **kwargs):
        super().__init__(*args, **kwargs)
        squads = Squad.objects.all()
        if not actor.is_admin:
            squads = squads.filter(pk__in=actor.squad_ids())
        self.fields["owner"].queryset = squads
        # a workspace links only its owner's services (checked by the domain function too)
        self.fields["services"].queryset = (
            Service.objects.filter(owner__in=squads).only("slug", "name").order_by("name")
        )
        if editing is not None:
            self.fields["slug"].disabled = True

    def clean(self):
        data = super().clean()
        if (
            data.get("source") == Workspace.Source.STORED
            and not (data.get("main_tf") or "").strip()
        ):
            self.add_error("main_tf", "A stored configuration needs some Terraform code.")
        if data.get("source") == Workspace.Source.GIT and not data.get("repository_url"):
            self.add_error("repository_url", "A git workspace needs a repository URL.")
        return data

    def workspace_fields(self):
        d = self.cleaned_data
        fields = {
            k: d[k]
            for k in (
                "name",
                "description",
                "source",
                "repository_url",
                "path",
                "auto_apply",
                "drift_checks",
            )
        }
        fields["ref"] = d.get("ref") or "main"
        fields["files"] = {"main.tf": d["main_tf"]} if d.get("main_tf") else {}
        return fields


def _save_form(request, form, ws=None):
    actor = Actor.from_request(request)
    try:
        if ws is None:
            ws = services.create_workspace(
                form.cleaned_data["owner"],
                actor=actor,
                slug=form.cleaned_data["slug"],
                services=list(form.cleaned_data["services"]),
                **form.workspace_fields(),
            )
        else:
            files = dict(ws.files)
            fields = form.workspace_fields()
            if fields["files"]:
                files.update(fields["files"])
            fields["files"] = files
            ws = services.update_workspace(
                ws,
                actor=actor,
                owner=form.cleaned_data["owner"],
                services=list(form.cleaned_data["services"]),
                **fields,
            )
    except DomainError as exc:
        add_form_errors(form, exc)
        return None
    return ws


@login_required
def workspace_new(request):
    actor = Actor.from_request(request)
    form = WorkspaceForm(request.POST or None, actor=actor)
    if request.method == "POST" and form.is_valid():
        ws = _save_form(request, form)
        if ws is not None:
            messages.success(request, f"Workspace “{ws.name}” created. Add variables, then plan.")
            return redirect(ws)
    return render(request, "infra/workspace_form.html", {"form": form, "ws": None})


@login_required
def workspace_edit(request, slug):
    ws = get_object_or_404(Workspace.objects.select_related("owner"), slug=slug)
    actor = Actor.from_request(request)
    initial = {
        "slug": ws.slug,
        "name": ws.name,
        "description": ws.description,
        "owner": ws.owner.slug if ws.owner else None,
        "services": [s.slug for s in ws.services.all()],
        "source": ws.source,
        "main_tf": ws.files.get("main.tf", ""),
        "repository_url": redact_credentials(ws.repository_url),  # write-only credentials
        "ref": ws.ref,
        "path": ws.path,
        "auto_apply": ws.auto_apply,
        "drift_checks": ws.drift_checks,
    }
    form = WorkspaceForm(request.POST or None, actor=actor, editing=ws, initial=initial)
    if request.method == "POST" and form.is_valid():
        saved = _save_form(request, form, ws)
        if saved is not None:
            messages.success(request, "Workspace saved.")
            return redirect(saved)
    return render(request, "infra/workspace_form.html", {"form": form, "ws": ws})


@login_required
def workspace_detail(request, slug):
    ws = get_object_or_404(
        Workspace.objects.select_related("owner", "lock_run", "drift_run"), slug=slug
    )
    runs = Paginator(
        TerraformRun.objects.filter(workspace=ws).order_by("-created_at", "-id"), 20
    ).get_page(request.GET.get("page"))
    ctx = {
        "ws": ws,
        "runs": runs,
        "page": runs,
        "variables": ws.variables.all(),
        "services": ws.services.select_related("owner"),
        "can_write": _can_write(request, ws),
        "is_admin": Actor.from_request(request).is_admin,
        "queued": TerraformRun.objects.filter(workspace=ws, status=RunStatus.PENDING).count(),
        "categories": Variable.Category.choices,
        "config_files": sorted(ws.files.items()),
        "outputs": sorted(ws.outputs.items()),
    }
    if request.htmx and request.GET.get("part") == "runs":
        return render(request, "infra/workspace_detail.html#runs", ctx)
    return render(request, "infra/workspace_detail.html", ctx)


def _post_action(request, fn, obj, back: str, *, ok=None, to_result=False, **kwargs):
    """Call ``fn(obj, actor=..., **kwargs)``; go to ``back`` (or the result's page), or answer
    the domain error as every page does (``portal.web``)."""
    try:
        result = fn(obj, actor=Actor.from_request(request), **kwargs)
    except DomainError as exc:
        return domain_error_response(request, exc, back)
    if ok:
        messages.success(request, ok)
    return redirect(result if to_result and result is not None else back)


@login_required
@require_POST
def workspace_plan(request, slug):
    ws = get_object_or_404(Workspace, slug=slug)
    message = request.POST.get("message", "")
    return _post_action(
        request, services.queue_run, ws, ws.get_absolute_url(), to_result=True, message=message
    )


@login_required
@require_POST
def workspace_drift_check(request, slug):
    ws = get_object_or_404(Workspace, slug=slug)
    back = ws.get_absolute_url()
    return _post_action(
        request, services.check_drift, ws, back, ok="Drift check queued.", to_result=True
    )


@login_required
@require_POST
def workspace_unlock(request, slug):
    ws = get_object_or_404(Workspace, slug=slug)
    back = ws.get_absolute_url()
    return _post_action(request, services.force_unlock, ws, back, ok="Workspace unlocked.")


@login_required
@require_POST
def variable_add(request, slug):
    ws = get_object_or_404(Workspace, slug=slug)
    return _post_action(
        request,
        services.set_variable,
        ws,
        ws.get_absolute_url() + "#variables",
        key=request.POST.get("key", ""),
        value=request.POST.get("value", ""),
        category=request.POST.get("category", "terraform"),
        sensitive=request.POST.get("sensitive") == "on",
        description=request.POST.get("description", ""),
        ok="Variable saved.",
    )


@login_required
@require_POST
def variable_delete(request, slug, pk):
    ws = get_object_or_404(Workspace, slug=slug)
    var = get_object_or_404(Variable, workspace=ws, pk=pk)
    back = ws.get_absolute_url() + "#variables"
    return _post_action(
        request, services.delete_variable, var, back, ok=f"Variable {var.key} deleted."
    )


def _run_ctx(request, run):
    return {
        "run": run,
        "ws": run.workspace,
        "s": run.summary or {},
        "waiting_for": services.waiting_for(run),
        "can_write": _can_write(request, run.workspace),
        "allowed": services.allowed_actions(run, Actor.from_request(request)),
        "active": run.status in ACTIVE,
    }


@login_required
def run_detail(request, pk):
    run = get_object_or_404(
        TerraformRun.objects.select_related("workspace", "workspace__owner"), pk=pk
    )
    ctx = _run_ctx(request, run)
    if request.htmx and request.GET.get("part") == "status":
        response = render(request, "infra/run_detail.html#status", ctx)
        if run.is_over:
            response.status_code = 286
        return response
    ctx["log"] = services.log_page(run, 0, limit=LOG_PAGE_BYTES)
    ctx["log_url"] = reverse("infra:run_log", args=[run.pk])
    return render(request, "infra/run_detail.html", ctx)


@login_required
def run_log(request, pk):
    """The live tail: log text after ``offset`` and the next poller; 286 when complete."""
    # the run is read before the log, so that nothing written after its status is missed
    run = get_object_or_404(TerraformRun.objects.select_related("workspace"), pk=pk)
    ctx = {"run": run, "log_url": reverse("infra:run_log", args=[run.pk])}
    return logviews.tail(
        request,
        "infra/run_detail.html#tail",
        ctx,
        lambda offset: services.log_page(run, offset, limit=LOG_PAGE_BYTES),
    )


def _run_action(request, pk, fn, ok, **kw):
    run = get_object_or_404(TerraformRun.objects.select_related("workspace"), pk=pk)
    return _post_action(request, fn, run, run.get_absolute_url(), ok=ok, **kw)


@login_required
@require_POST
def run_apply(request, pk):
    return _run_action(
        request, pk, services.apply_run, "Apply confirmed: the saved plan is applying."
    )


@login_required
@require_POST
def run_discard(request, pk):
    return _run_action(
        request, pk, services.discard_run, "Run discarded.", reason=request.POST.get("reason", "")
    )


@login_required
@require_POST
def run_cancel(request, pk):
    return _run_action(request, pk, services.cancel_run, "Cancel requested.")


board = board_view(board_section)


@login_required
def service_panel(request, slug):
    """The body of the infrastructure panel on the service page (lazy-loaded by HTMX): the
    service's Terraform workspaces."""
    service = get_object_or_404(Service.objects.only("pk", "slug"), slug=slug)
    workspaces = service.terraform_workspaces.all()
    return render(request, "infra/_workspace_rows.html", {"workspaces": workspaces})
