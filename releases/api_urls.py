from portal.api.routers import Router
from releases import api

router = Router()
router.register("releases", api.ReleaseViewSet, basename="release")
router.register("environments", api.EnvironmentViewSet, basename="environment")
router.register("release-strategies", api.StrategyViewSet, basename="release-strategy")
router.register("analysis-templates", api.TemplateViewSet, basename="analysis-template")

urlpatterns = list(router.urls)
