from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from portal import inbound, views
from portal.registry import registry
from portal.routes import routes

# every app registers its HTML and API URL modules from AppConfig.ready() (portal.registry.urls)
api_v1 = [
    path("", include("portal.api.urls")),
    *[path("", include(u.api)) for u in registry.urls if u.api],
]

urlpatterns = [
    path("", views.home, name="home"),
    *routes(
        views,
        """
        audit/                               audit_list
        tokens/                              token_list
        tokens/<int:pk>/revoke               token_revoke
        events/                              event_list
        events/deliveries/<int:pk>/redeliver event_redeliver
        healthz                              healthz
        metrics                              metrics_view      metrics
        """,
    ),
    path("hooks/github", inbound.github, name="github_webhook"),
    path("hooks/github/", inbound.github),
    path("hooks/terraform", inbound.github, name="terraform_webhook"),  # alias, kept for old hooks
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", views.ApiDocsView.as_view(url_name="schema"), name="api_docs"),
    *[path("", include(u.module)) for u in registry.urls if u.module],
]

handler400 = "portal.handlers.bad_request"
handler403 = "portal.handlers.permission_denied"
handler404 = "portal.handlers.not_found"
handler500 = "portal.handlers.server_error"
