"""OpenAPI (drf-spectacular) extensions for Backline's own pieces."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "portal.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A squad bot token: `Authorization: Bearer bl_...`",
        }


from drf_spectacular.openapi import AutoSchema  # noqa: E402
from drf_spectacular.utils import extend_schema_field  # noqa: E402
from rest_framework import serializers  # noqa: E402


@extend_schema_field(
    {
        "oneOf": [{"type": "object", "additionalProperties": True}, {"type": "string"}],
        "description": "Current state, on a 409: the resource's state object, or its status",
    }
)
class CurrentStateField(serializers.JSONField):
    pass


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. invalid, not_found")
    message = serializers.CharField(help_text="What went wrong, for people")
    # the body's "errors" key: a field, although Serializer.errors is a property
    errors = serializers.DictField(  # type: ignore[assignment]
        required=False, help_text="Field errors, by field name"
    )
    state = CurrentStateField(required=False)
    current = CurrentStateField(required=False, help_text="The same as state (older clients)")


ERROR_DESCRIPTIONS = {
    "400": "Invalid input: the message and field errors say what and where",
    "401": "No or invalid credentials",
    "403": "Authenticated, but not allowed (not a member of the owning squad, or a missing scope)",
    "404": "Not found",
    "409": "Refused: the resource is not in a state that allows this (or an idempotent repeat in progress)",
    "413": "Request body too large",
    "429": "Rate limit exceeded; see Retry-After",
}


class BacklineAutoSchema(AutoSchema):
    """Documents the error answers every operation can give, in the one error format."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        codes = ["400", "401", "403", "429"]
        if "{" in self.path:
            codes.append("404")
        if self.method in ("POST", "PUT", "PATCH", "DELETE"):
            codes += ["409", "413"]
        for code in codes:
            if code not in responses:
                resp = self._get_response_for_code(ErrorSerializer, code, direction=direction)
                resp["description"] = ERROR_DESCRIPTIONS[code]
                responses[code] = resp
        return responses
