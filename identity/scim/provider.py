"""What the SCIM service announces (``/ServiceProviderConfig``, ``/ResourceTypes``, ``/Schemas``)
and the protocol engine: ``scim2-server``'s ``ScimService`` over ``scim2-models`` resources.

``User`` carries the enterprise extension (Entra ID sends ``department``, ``manager`` ...):
every attribute the directory sends is kept and returned; Backline reads ``userName``,
``name``, ``displayName``, ``emails``, ``active`` and ``externalId``.
"""

from functools import cache
from http import HTTPStatus
from typing import Any

from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    Context,
    EnterpriseUser,
    ETag,
    External,
    Filter,
    Group,
    Patch,
    Reference,
    Resource,
    ResourceType,
    ResponseParameters,
    ScimPolicy,
    ScimProvider,
    ServiceProviderConfig,
    Sort,
    User,
)
from scim2_server.responses import ScimResponse
from scim2_server.service import ScimService

MAX_RESULTS = 200
# What real directories send beyond the strict RFC reading: Entra ID removes members by value
# (``{"op": "Remove", "path": "members", "value": [{"value": id}]}``) and replaces through a
# filter that matches nothing yet (``emails[type eq "work"].value`` on a user without one);
# attributes of extensions Backline does not declare (custom Entra/Okta extensions) are
# accepted and dropped rather than failing the whole push.
POLICY = ScimPolicy(
    unknown=ScimPolicy.Unknown.ignore,
    remove_value_as_filter=ScimPolicy.RemoveValue.apply,
    unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
)


def service_provider_config() -> ServiceProviderConfig:
    return ServiceProviderConfig(
        documentation_uri=Reference[External]("https://datatracker.ietf.org/doc/html/rfc7644"),
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=False),
        etag=ETag(supported=True),
        authentication_schemes=[
            AuthenticationScheme(
                type=AuthenticationScheme.Type.oauthbearertoken,
                name="Bearer token",
                description="A Backline API token with the 'scim' scope "
                "(manage.py create_token --scopes scim)",
                spec_uri=Reference[External]("https://datatracker.ietf.org/doc/html/rfc6750"),
                primary=True,
            )
        ],
    )


class BacklineScimService(ScimService):
    """``scim2-server``'s service, answering a PATCH with the resource (200), as Okta expects
    (RFC 7644 §3.5.2 allows 200 with the resource or 204)."""

    def patch_response(
        self,
        base_url: str,
        resource: Resource[Any],
        response_parameters: ResponseParameters[Any],
    ) -> ScimResponse:
        published = self.publish(base_url, resource)
        response = self.resource_response(
            published, Context.RESOURCE_REPLACEMENT_RESPONSE, response_parameters
        )
        response.status = HTTPStatus.OK
        return response


@cache
def provider() -> ScimProvider:
    return ScimProvider(
        models=[User, EnterpriseUser, Group],
        resource_types=[
            ResourceType.from_resource(User[EnterpriseUser]),
            ResourceType.from_resource(Group),
        ],
        config=service_provider_config(),
        policy=POLICY,
    )


@cache
def service() -> BacklineScimService:
    return BacklineScimService(provider())
