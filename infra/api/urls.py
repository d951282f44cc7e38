from infra.api import views
from portal.api.routers import Router

router = Router()
router.register("workspaces", views.WorkspaceViewSet, basename="workspace")
router.register("terraform-runs", views.TerraformRunViewSet, basename="terraformrun")

urlpatterns = router.urls
