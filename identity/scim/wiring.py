"""What the SCIM part of identity registers at start-up (called from ``IdentityConfig.ready``)."""

from portal import registry


def register() -> None:
    from identity.scim import sessions

    sessions.connect()
    registry.urls("identity.scim.urls")
    registry.nav("Directory sync", "scim:directory_sync", "directory", order=90, admin_only=True)
    registry.nav_section("scim", "directory")
