"""Settings for the catalog benchmark's gunicorn only: Backline's settings with a URLconf that
also mounts the bare baseline view (``tests/bench/bare_urls.py``). Never used in production."""

from portal.settings import *  # noqa: F403

ROOT_URLCONF = "tests.bench.bare_urls"
