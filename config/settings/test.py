"""Tests: the real PostgreSQL, Redis, Celery worker and channel layer, on their own databases."""

from .base import *  # noqa: F403
from .base import env

SECRET_KEY = "test-only-secret-key-not-for-production-0123456789"
DEBUG = False
REDIS_URL = env("TEST_REDIS_URL", default="redis://127.0.0.1:6379/14")
DATABASES = {"default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/kefu")}
DATABASES["default"]["TEST"] = {"NAME": env("TEST_DATABASE_NAME", default="test_kefu")}
# pytest-django flushes tables between transactional tests with TRUNCATE; the audit log's append-only trigger
# lets that through only for sessions with this setting (core/migrations/0002_auditlog_append_only.py)
DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c kefu.audit_allow_truncate=on"
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "kefu:test:cache",
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": "kefu:test:asgi"},
    }
}
CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BEAT_SCHEDULE = {}
KEFU_FIELD_KEYS = "t1:" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
KEFU_BLIND_INDEX_KEY = "YmxpbmQtaW5kZXgta2V5LWZvci10ZXN0cy0wMTIzNDU2Nzg5"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ALLOWED_HOSTS = ["*"]
# django-axes as in production, except that the test client's client.login() (no request) is let through
AUTHENTICATION_BACKENDS = [
    "core.security.RequestOptionalAxesBackend",
    "django.contrib.auth.backends.ModelBackend",
]
