"""Backstage catalog import/export over the API: ``POST /api/v1/catalog/import`` and
``GET /api/v1/catalog/export``."""

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.parsers import BaseParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.actors import Actor
from squads import backstage

MAX_IMPORT_BYTES = 10 * 1024 * 1024


class _TextParser(BaseParser):
    """Hands the raw request body over as text (the importer parses the YAML itself)."""

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        return raw


class YamlParser(_TextParser):
    media_type = "application/yaml"


class XYamlParser(_TextParser):
    media_type = "application/x-yaml"


class TextYamlParser(_TextParser):
    media_type = "text/yaml"


class PlainTextParser(_TextParser):
    media_type = "text/plain"


class CatalogImportErrorSerializer(serializers.Serializer):
    file = serializers.CharField()
    document = serializers.IntegerField(allow_null=True)
    entity = serializers.CharField(allow_blank=True)
    field = serializers.CharField(allow_blank=True)
    message = serializers.CharField()


class CatalogImportFailedSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    errors = CatalogImportErrorSerializer(many=True)


class CatalogImportCountsSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()


class CatalogImportReportSerializer(serializers.Serializer):
    dry_run = serializers.BooleanField()
    sources = serializers.ListField(child=serializers.CharField())
    files_read = serializers.IntegerField()
    documents = serializers.IntegerField()
    locations_followed = serializers.IntegerField()
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    counts = serializers.DictField(
        child=CatalogImportCountsSerializer(),
        help_text="per kind: tribe, squad, person, domain, system, api, resource, component, "
        "other (kinds Backline does not model, stored as written)",
    )
    skipped = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="always empty: kinds Backline does not model are stored (counts.other)",
    )
    warnings = serializers.ListField(child=serializers.CharField())
    summary = serializers.CharField()


class CatalogErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


def _error(code, message, http_status, errors=None):
    body = {"code": code, "message": message}
    if errors is not None:
        body["errors"] = errors
    return Response(body, status=http_status)


def _flag(value) -> bool:
    return str(value or "").strip().lower() in ("1", "true", "yes", "on")


# the import's OpenAPI description (what it accepts, how it answers)
_IMPORT_SCHEMA = extend_schema(
    operation_id="catalog_import",
    summary="Import Backstage descriptor files",
    description=(
        "Body: multi-document Backstage YAML (`application/yaml`, `text/yaml` or "
        "`text/plain`), or a multipart upload with one or more `file` fields. The import is "
        "all-or-nothing and idempotent. Location targets are not followed for uploads. "
        "Needs `catalog:write` for every squad owning an entity the import creates or "
        "changes (org admins: anything). At most 10 MB."
    ),
    tags=["catalog"],
    parameters=[
        OpenApiParameter(
            "dry_run",
            OpenApiTypes.BOOL,
            OpenApiParameter.QUERY,
            description="Validate and report what would change; write nothing.",
        )
    ],
    request={
        "application/yaml": OpenApiTypes.STR,
        "text/yaml": OpenApiTypes.STR,
        "text/plain": OpenApiTypes.STR,
        "multipart/form-data": inline_serializer(
            name="CatalogImportUpload",
            fields={"file": serializers.ListField(child=serializers.FileField())},
        ),
    },
    responses={
        200: CatalogImportReportSerializer,
        400: OpenApiResponse(
            CatalogImportFailedSerializer, description="invalid entities; nothing imported"
        ),
        401: CatalogErrorSerializer,
        403: CatalogErrorSerializer,
        413: CatalogErrorSerializer,
    },
)


class CatalogImportView(APIView):
    body_limit = MAX_IMPORT_BYTES  # above DATA_UPLOAD_MAX_MEMORY_SIZE (portal.limits)
    parser_classes = [YamlParser, XYamlParser, TextYamlParser, PlainTextParser, MultiPartParser]

    @_IMPORT_SCHEMA
    def post(self, request):
        if _declared_length(request) > MAX_IMPORT_BYTES:
            return _too_big()
        sources, refused = _read_sources(request)
        if refused is not None:
            return refused
        if not sources:
            return _error(
                "invalid",
                "Send Backstage YAML as the body (application/yaml) or upload it as `file`.",
                status.HTTP_400_BAD_REQUEST,
                [],
            )
        try:
            report = backstage.import_catalog(
                sources,
                Actor.from_request(request, door="api"),
                dry_run=_flag(request.query_params.get("dry_run")),
            )
        except backstage.ImportFailed as exc:
            n = len(exc.errors)
            return _error(
                "invalid",
                f"{n} error{'s' if n != 1 else ''}; nothing was imported. First: {exc.errors[0]}",
                status.HTTP_400_BAD_REQUEST,
                [e.as_dict() for e in exc.errors],
            )
        return Response({**report.as_dict(), "summary": report.summary})


def _too_big():
    return _error(
        "too_large",
        f"The import is larger than {MAX_IMPORT_BYTES // 2**20} MB.",
        status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    )


def _declared_length(request):
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _read_sources(request):
    """``([(name, text)], None)``, or ``(None, the refusal)`` when the import is too large or
    not UTF-8 text."""
    content_type = (request.content_type or "").split(";")[0].strip().lower()
    if content_type.startswith("multipart/"):
        return _uploaded_sources(request)
    return _body_sources(request)


def _uploaded_sources(request):
    files = request.FILES.getlist("file") + request.FILES.getlist("files")
    if sum(f.size for f in files) > MAX_IMPORT_BYTES:
        return None, _too_big()
    sources = []
    for f in files:
        try:
            sources.append((f.name, f.read().decode("utf-8")))
        except UnicodeDecodeError:
            issue = {"file": f.name, "document": None, "entity": "", "field": ""}
            return None, _error(
                "invalid",
                f"{f.name} is not UTF-8 text.",
                status.HTTP_400_BAD_REQUEST,
                [{**issue, "message": "not UTF-8 text"}],
            )
    return sources, None


def _body_sources(request):
    raw = request.data if isinstance(request.data, bytes) else b""
    if len(raw) > MAX_IMPORT_BYTES:
        return None, _too_big()
    if not raw.strip():
        return [], None
    try:
        return [("request body", raw.decode("utf-8"))], None
    except UnicodeDecodeError:
        return None, _error(
            "invalid", "The body is not UTF-8 text.", status.HTTP_400_BAD_REQUEST, []
        )


class CatalogExportView(APIView):
    @extend_schema(
        operation_id="catalog_export",
        summary="Export the catalog as Backstage YAML",
        description="The whole catalog as multi-document Backstage YAML; re-imports to the same catalog.",
        tags=["catalog"],
        responses={
            (200, "application/yaml"): OpenApiTypes.STR,
            401: CatalogErrorSerializer,
        },
    )
    def get(self, request):
        resp = HttpResponse(
            backstage.export_catalog(), content_type="application/yaml; charset=utf-8"
        )
        resp["Content-Disposition"] = 'inline; filename="catalog-info.yaml"'
        return resp
