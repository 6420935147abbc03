"""Production: every secret from the environment; passes `manage.py check --deploy`."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import KEFU_DEFAULT_RATE_PER_HOUR, KEFU_RATE_LIMITS_ENABLED, env

DEBUG = False
SECRET_KEY = env("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
KEFU_FIELD_KEYS = env("KEFU_FIELD_KEYS")
KEFU_BLIND_INDEX_KEY = env("KEFU_BLIND_INDEX_KEY")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SECURE = True
CSRF_COOKIE_SAMESITE = "Lax"
# over HTTPS the sockets are wss: only
KEFU_CSP = {**KEFU_CSP, "connect-src": ["'self'", "wss:"]}  # noqa: F405
X_FRAME_OPTIONS = "DENY"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = False
KEFU_ENV = "production"

# Sending limits protect the customer's WeChat accounts from bans: production refuses to run without them (global
# switch off, a default of 0, or a channel's rate_per_hour 0) unless this explicit override is set.
KEFU_ALLOW_UNLIMITED_SENDING = env.bool("KEFU_ALLOW_UNLIMITED_SENDING", default=False)
if not KEFU_ALLOW_UNLIMITED_SENDING and (not KEFU_RATE_LIMITS_ENABLED or KEFU_DEFAULT_RATE_PER_HOUR <= 0):
    raise ImproperlyConfigured(
        "Sending limits are off (KEFU_RATE_LIMITS_ENABLED=false or KEFU_DEFAULT_RATE_PER_HOUR<=0) in production: "
        "WeChat bans accounts that send too much. Turn them on, or set KEFU_ALLOW_UNLIMITED_SENDING=true to override."
    )
