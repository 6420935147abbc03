import os

import pytest

# the live daphne server and the headless Chromium of the browser tests
from tests.e2e.conftest import asgi_server, browser, page  # noqa: F401


@pytest.fixture(autouse=True, scope="module")
def _restore_async_unsafe():
    """The browser fixture sets DJANGO_ALLOW_ASYNC_UNSAFE for Playwright; undo it after the module so that later
    tests (check --deploy in a subprocess) do not inherit it."""
    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    yield
    if before is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before
