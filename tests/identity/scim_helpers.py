"""Helpers for the SCIM tests: a token with the ``scim`` scope and a SCIM HTTP session."""

import requests

from portal.models import ApiToken

SCIM_JSON = "application/scim+json"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


def scim_token(squad, scopes=("scim",), name="directory"):
    token, raw = ApiToken.generate(squad=squad, name=name, scopes=list(scopes))
    ApiToken.objects.filter(pk=token.pk).update(rate_limit_per_minute=1_000_000)
    return raw


def scim_session(raw: str) -> requests.Session:
    s = requests.Session()
    s.headers.update(
        {"Authorization": f"Bearer {raw}", "Content-Type": SCIM_JSON, "Accept": SCIM_JSON}
    )
    return s


def patch(*operations):
    return {"schemas": [PATCH_OP], "Operations": list(operations)}
