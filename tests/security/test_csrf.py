"""CSRF on every form: no view skips Django's CSRF check except the signed webhooks, and the API's session
authentication enforces CSRF itself (token clients carry no cookie to forge)."""

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.authentication import SessionAuthentication
from rest_framework.settings import api_settings
from rest_framework.views import APIView

# signature-checked machine endpoints (bots/webhooks.py): WeChat, WeCom and bridges cannot send a CSRF token
ALLOWED_EXEMPT_PREFIXES = ("wechat/", "bridge/")


def _walk(resolver: URLResolver, prefix: str = ""):
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.callback


def _is_drf(callback) -> bool:
    cls = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    return isinstance(cls, type) and issubclass(cls, APIView)


def test_only_webhooks_skip_the_csrf_check():
    exempt = []
    for route, callback in _walk(get_resolver()):
        if not getattr(callback, "csrf_exempt", False):
            continue
        clean = route.lstrip("^")
        if clean.startswith(ALLOWED_EXEMPT_PREFIXES):
            continue
        if _is_drf(callback):  # DRF views: checked below through the authentication classes
            continue
        exempt.append(route)
    assert exempt == []


def test_api_cookie_authentication_enforces_csrf():
    cookie_auth = [a for a in api_settings.DEFAULT_AUTHENTICATION_CLASSES if issubclass(a, SessionAuthentication)]
    assert cookie_auth == [SessionAuthentication]  # DRF's own, which calls enforce_csrf()
    for route, callback in _walk(get_resolver()):
        if _is_drf(callback):
            cls = getattr(callback, "cls", None)
            classes = getattr(cls, "authentication_classes", api_settings.DEFAULT_AUTHENTICATION_CLASSES)
            for auth in classes:
                if issubclass(auth, SessionAuthentication):
                    assert auth.enforce_csrf is SessionAuthentication.enforce_csrf, (route, auth)


@pytest.mark.django_db
def test_session_api_write_without_csrf_token_is_refused():
    user = User.objects.create_superuser("root", "root@example.com", "Root-pass-long-1")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post("/api/v1/keyword-rules/", {"name": "x", "keyword": "x", "reply": "x"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert "CSRF" in str(response.json()["error"]["message"])
    # the simulator's JSON endpoints too
    response = client.post("/simulator/api/customers/", "{}", content_type="application/json")
    assert response.status_code == 403
