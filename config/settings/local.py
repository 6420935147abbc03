"""Local development and `make run`."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=False)
if not SECRET_KEY:  # noqa: F405
    # Only for a first start without .env; `make run` writes a random key into .env.
    SECRET_KEY = "local-insecure-only-" + "x" * 40
