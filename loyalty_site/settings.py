"""Settings, all driven by environment variables (documented in README.md, "Configuration")."""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import urlsplit

import environ
from celery.schedules import crontab
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

LOYALTY_DATA_DIR = Path(env.str("LOYALTY_DATA_DIR", default=str(BASE_DIR / ".data"))).resolve()


def _generated_secret_key() -> str:
    # Kept in the data folder, never in the repository; stable across restarts.
    path = LOYALTY_DATA_DIR / "secret_key"
    if not path.exists():
        LOYALTY_DATA_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="") or _generated_secret_key()
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
PORT = env.int("PORT", default=8000)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework_api_key",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "pgtrigger",
    "pghistory",
    "import_export",
    "loyalty_site",
    "members",
    "points",
    "rewards_mall",
    "campaigns",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "loyalty_site.urls"
WSGI_APPLICATION = "loyalty_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------
# DATABASE_URL unset: the embedded PostgreSQL of the pgserver wheel, with its data in
# LOYALTY_DATA_DIR. `make run` / `make test` start it and pass its URL to every process;
# a bare `manage.py` attaches to (or starts) the same cluster.
if not env.str("DATABASE_URL", default=""):
    from loyalty_site.embedded import postgres_socket_dir, socket_database_url, start_postgres

    _embedded_postgres = start_postgres(LOYALTY_DATA_DIR / "postgres")
    env.ENVIRON["DATABASE_URL"] = socket_database_url(postgres_socket_dir(_embedded_postgres))

DATABASES = {"default": env.db("DATABASE_URL")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("TEST", {})

# --- Read replica (docs/adr/0017, loyalty_site/db_router.py) ------------------------------
# DATABASE_REPLICA_URL set: a "replica" alias that reports read from when they ask for it;
# writes, transactions and everything unmarked stay on "default". Unset: no second alias.
DATABASE_REPLICA_URL = env.str("DATABASE_REPLICA_URL", default="")
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = env.db("DATABASE_REPLICA_URL")
    DATABASES["replica"]["CONN_MAX_AGE"] = DATABASES["default"]["CONN_MAX_AGE"]
    DATABASES["replica"]["CONN_HEALTH_CHECKS"] = True
    # Tests have one server: the alias reads the test database through a connection of its own.
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
DATABASE_ROUTERS = ["loyalty_site.db_router.ReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


# --- Broker, cache ------------------------------------------------------------------------
# CELERY_BROKER_URL unset: the embedded Redis that `make run` / `make test` started, found
# through the port file it writes in the data folder.
def _embedded_redis_url() -> str:
    port_file = LOYALTY_DATA_DIR / "redis" / "redis.port"
    port = port_file.read_text().strip() if port_file.exists() else "6379"
    return f"redis://127.0.0.1:{port}/0"


CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="") or _embedded_redis_url()
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Periodic jobs; django-celery-beat copies these into its database schedule at start.
CELERY_BEAT_SCHEDULE = {
    "purge-idempotency-records": {
        "task": "loyalty_site.purge_idempotency_records",
        "schedule": 3600.0,
    },
    # The ledger's jobs (points/tasks.py), in CELERY_TIMEZONE: expiry just after midnight.
    "expire-points": {"task": "points.expire_points", "schedule": crontab(hour=0, minute=5)},
    "release-pending-points": {
        "task": "points.release_pending_points",
        "schedule": crontab(minute=15),
    },
    "check-ledger": {"task": "points.check_ledger", "schedule": crontab(hour=3, minute=30)},
    # members/tasks.py: tiers after expiry, segments after tiers.
    "evaluate-tiers": {"task": "members.evaluate_tiers", "schedule": crontab(hour=1, minute=0)},
    "compute-segments": {
        "task": "members.compute_segments",
        "schedule": crontab(hour=1, minute=30),
    },
    # campaigns/tasks.py: expiry reminders at a civil hour, after the night's expiry run.
    "send-expiry-reminders": {
        "task": "campaigns.send_expiry_reminders",
        "schedule": crontab(hour=10, minute=0),
    },
    # --- Webhooks (points/webhooks.py, docs/adr/0010): outbox fan-out and sending, every 10 s;
    # a run that could not start within its interval is dropped, the next one does its work
    # (`expire_seconds`: django-celery-beat's name for the message's `expires`).
    "deliver-webhooks": {
        "task": "points.deliver_webhooks",
        "schedule": 10.0,
        "options": {"expire_seconds": 10},
    },
    "purge-webhook-deliveries": {
        "task": "points.purge_webhook_deliveries",
        "schedule": crontab(hour=4, minute=10),
    },
    # campaigns/tasks.py: programme health after expiry (00:05) so the day's expiry counts.
    "compute-health-metrics": {
        "task": "campaigns.compute_health_metrics",
        "schedule": crontab(hour=2, minute=0),
    },
}
CELERY_TIMEZONE = env.str("TIME_ZONE", default="Asia/Shanghai")


def _cache_url() -> str:
    # Throttle counters must be shared by every web process: a Redis database of its own.
    if CELERY_BROKER_URL.startswith("redis://"):
        return urlsplit(CELERY_BROKER_URL)._replace(path="/1").geturl()
    return "locmemcache://"


CACHES = {"default": env.cache_url("CACHE_URL", default=_cache_url())}

# --- Auth, i18n, time -----------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="zh-hans")
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="Asia/Shanghai")
USE_I18N = True
USE_TZ = True

# --- Static files -------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = LOYALTY_DATA_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "loyalty_site" / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = LOYALTY_DATA_DIR / "media"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
if DEBUG:
    STORAGES["staticfiles"] = {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage",
    }

# --- Email --------------------------------------------------------------------------------
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="loyalty@localhost")

# --- Expiry reminders: SMS (campaigns/sms.py) ---------------------------------------------
# Mail goes through EMAIL_URL above. SMS through the class named here: the logging sender
# (sends nothing) by default, campaigns.sms.HttpGatewaySmsSender with SMS_GATEWAY_URL.
SMS_SENDER = env.str("SMS_SENDER", default="campaigns.sms.LoggingSmsSender")
SMS_GATEWAY_URL = env.str("SMS_GATEWAY_URL", default="")
SMS_GATEWAY_TIMEOUT = env.float("SMS_GATEWAY_TIMEOUT", default=10)
# The logging sender also appends each message as a JSON line to this file, when set.
SMS_LOG_FILE = env.str("SMS_LOG_FILE", default="")

# --- API ----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["loyalty_site.api.auth.PartnerKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["loyalty_site.api.auth.HasPartnerKey"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_THROTTLE_CLASSES": ["loyalty_site.api.throttling.PartnerKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"partner_key": env.str("API_RATE_LIMIT", default="6000/min")},
    "DEFAULT_PAGINATION_CLASS": "loyalty_site.api.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "loyalty_site.api.errors.problem_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Loyalty points back office: partner API",
    "DESCRIPTION": "Partner API v1 (see api.md): members, events, points, rewards, redemptions.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Named after their owner: a bare "StatusEnum" would collide between apps.
    "ENUM_NAME_OVERRIDES": {
        "MemberStatusEnum": "members.models.Member.Status",
        "MemberLanguageEnum": "members.models.Member.Language",
        "RewardKindEnum": "rewards_mall.models.Reward.Kind",
        "RedemptionStatusEnum": "rewards_mall.models.Redemption.Status",
    },
    # The problem+json answers every partner endpoint can give (loyalty_site/api/schema.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "loyalty_site.api.schema.add_problem_responses",
    ],
    # Served from our own static files: the machines it runs on may be offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

IDEMPOTENCY_KEY_TTL_HOURS = env.int("IDEMPOTENCY_KEY_TTL_HOURS", default=48)
# Public address of the mall pages in mall links, when partners reach the API by another host.
MALL_BASE_URL = env.str("MALL_BASE_URL", default="")
# A verified API key is trusted this long per process; revoking one takes effect within it.
API_KEY_CACHE_SECONDS = env.int("API_KEY_CACHE_SECONDS", default=10)
# How old the per-process copy of the programme settings may be on request paths.
PROGRAMME_CACHE_SECONDS = env.float("PROGRAMME_CACHE_SECONDS", default=5)
# How often a process checks whether earning rules or campaigns changed (campaigns.engine);
# its own changes take effect at once, other processes' within this many seconds.
RULEBOOK_CHECK_SECONDS = env.float("RULEBOOK_CHECK_SECONDS", default=2)
# Off behind a transaction-pooling PgBouncer that cannot keep prepared statements.
LEDGER_PREPARED_STATEMENTS = env.bool("LEDGER_PREPARED_STATEMENTS", default=True)
# --- Webhooks (points/webhooks.py): delivered and given-up deliveries, and their attempt log,
# are deleted after this many days (nightly job `points.purge_webhook_deliveries`).
WEBHOOK_DELIVERY_RETENTION_DAYS = env.int("WEBHOOK_DELIVERY_RETENTION_DAYS", default=30)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # pgserver narrates every start and stop of the embedded cluster at INFO.
        "pgserver": {"level": "WARNING"},
    },
}

if not DEBUG and env.bool("DJANGO_SECURE", default=False):
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Audit trail (loyalty_site/audit.py, docs/adr/0012-audit-trail-and-roles.md) -------------
import pghistory  # noqa: E402

# Who made a change is kept in each event row (JSON), not in a shared context table: the
# triggers then do one INSERT and call no function that needs a subtransaction.
PGHISTORY_CONTEXT_FIELD = pghistory.ContextJSONField()
PGHISTORY_CONTEXT_ID_FIELD = pghistory.ContextUUIDField()
# The trail is never edited: the database refuses UPDATE and DELETE on every event table.
PGHISTORY_APPEND_ONLY = True
MIDDLEWARE += [
    "loyalty_site.audit.RequestIdMiddleware",
    "loyalty_site.audit.AdminAuditMiddleware",
]
SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"] = [
    *SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"],
    "loyalty_site.audit.document_request_id",
]
# Addresses (or networks) of the reverse proxies whose X-Forwarded-For is believed.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
