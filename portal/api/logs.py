"""The API side of every job log endpoint: one query parameter, one answer shape
(``portal.joblog.page``)."""

from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from portal.params import log_offset

LOG_LIMIT = 1024 * 1024  # the most one API answer carries
OFFSET_PARAMETER = OpenApiParameter(
    "offset", int, description="byte offset to read from (the previous answer's next_offset)"
)


class LogPageSerializer(serializers.Serializer):
    offset = serializers.IntegerField(help_text="where this text starts")
    next_offset = serializers.IntegerField(help_text="ask again from here")
    text = serializers.CharField()
    complete = serializers.BooleanField(
        help_text="the job is over and everything was read: nothing will follow next_offset"
    )


def log_response(request, read_page) -> Response:
    """``read_page(offset)`` → the page; a bad ``?offset=`` is a 400 naming it."""
    try:
        offset = log_offset(request.query_params.get("offset"))
    except ValueError as exc:
        raise ValidationError({"offset": [str(exc)]}) from None
    return Response(read_page(offset))
