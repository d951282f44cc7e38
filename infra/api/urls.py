from portal.api.routers import Router

router = Router()

urlpatterns = router.urls
