import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django_application = get_wsgi_application()

# after django.setup(): these read models and settings
from django.conf import settings  # noqa: E402
from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.db import connections  # noqa: E402

from portal.leanpath import LeanApp  # noqa: E402
from portal.registry import registry, startup_problems  # noqa: E402

# the hottest API reads (routes the apps register) are answered before Django: portal.leanpath
application = LeanApp(django_application, registry.lean_routes)

# BACKLINE_PRODUCTION: refuse to serve while a startup check fails (e.g. a demo password)
if settings.PRODUCTION and (problems := startup_problems()):
    raise ImproperlyConfigured("; ".join(problems))
connections.close_all()
