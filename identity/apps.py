from django.apps import AppConfig


class IdentityConfig(AppConfig):
    """Who people are: single sign-on through the organisation's OpenID provider, people and
    groups pushed by its directory over SCIM, and the password sign-in's brute-force guard.

    It sits above the catalog (it creates people and directory memberships) and below the apps
    that run work."""

    name = "identity"

    def ready(self):
        from django.contrib import admin

        from identity import safety
        from identity.forms import GuardedAdminAuthenticationForm
        from portal import registry

        # sign-in pages, the OIDC redirect and callback, sign-out, profiles
        registry.urls(module="identity.urls")
        registry.startup_check(safety.production_problems)
        # the admin site's own sign-in form goes through the same guard (and the same switch)
        admin.site.login_form = GuardedAdminAuthenticationForm
        # --- SCIM server and directory sync page (h15scim) ---
        from identity.scim import wiring as scim_wiring

        scim_wiring.register()
        # --- end SCIM ---
