"""The API's JSON parser: DRF's, with the nesting depth and size bounded
(:mod:`portal.safeparse`). A body nested deeper than ``MAX_DEPTH`` levels is a 400
``{"code": "too_complex", "message": ...}`` before any view or serializer sees it."""

import codecs
from typing import Any

from django.conf import settings
from rest_framework import exceptions, parsers
from rest_framework.settings import api_settings

from portal import safeparse


def _refuse_constant(name):
    raise ValueError(f"{name} is not valid JSON")


class BoundedJSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        raw = stream.read() if stream is not None else b""
        strict: dict[str, Any] = (
            {"parse_constant": _refuse_constant} if api_settings.STRICT_JSON else {}
        )
        try:
            text = codecs.decode(raw, encoding)
            return safeparse.loads_json(
                text, max_bytes=settings.DATA_UPLOAD_MAX_MEMORY_SIZE, **strict
            )
        except safeparse.TooComplex as exc:
            raise exceptions.ParseError(
                f"The request body is refused: {exc}.", "too_complex"
            ) from None
        except ValueError as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
