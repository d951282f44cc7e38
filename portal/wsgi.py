import os

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application
from django.db import connections

from portal.registry import startup_problems

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
application = get_wsgi_application()

# BACKLINE_PRODUCTION: refuse to serve while a startup check fails (e.g. a demo password)
if settings.PRODUCTION and (problems := startup_problems()):
    raise ImproperlyConfigured("; ".join(problems))
connections.close_all()
