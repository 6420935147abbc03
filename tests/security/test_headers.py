"""Security headers and the Content-Security-Policy on our pages; no inline scripts in our HTML."""

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.contrib.auth.models import User

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


class ScriptAudit(HTMLParser):
    """Collects executable inline script: <script> without src (JSON data blocks are not executed), inline event
    handlers (onclick=...) and javascript: URLs."""

    def __init__(self):
        super().__init__()
        self.problems: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            if attrs.get("src"):
                self.external.append(attrs["src"])
            elif (attrs.get("type") or "").lower() not in ("application/json", "application/ld+json"):
                self.problems.append(f"inline <script> at line {self.getpos()[0]}")
        for name, value in attrs.items():
            if name.startswith("on"):
                self.problems.append(f"event handler {name}= on <{tag}>")
            if name in ("href", "src", "action", "formaction") and (value or "").strip().lower().startswith(
                "javascript:"
            ):
                self.problems.append(f"javascript: URL on <{tag}>")


def inline_script_problems(html: str) -> list[str]:
    audit = ScriptAudit()
    audit.feed(html)
    return audit.problems


def csp(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


@pytest.fixture
def staff_client(client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "Root-pass-long-1"))
    return client


PAGES = [
    "/simulator/",
    "/admin/",
    "/admin/auth/user/",
    "/admin/auth/user/add/",
    "/admin/auth/group/add/",
    "/admin/core/auditlog/",
    "/admin/knowledge/keywordrule/",
    "/admin/knowledge/keywordrule/add/",
    "/api/docs/",
    "/api/redoc/",
    "/console/",
    "/dashboard/",
]


@pytest.mark.parametrize("url", PAGES)
def test_our_pages_carry_the_policy_and_no_inline_script(staff_client, web_channel, url):
    response = staff_client.get(url)
    assert response.status_code == 200, url
    policy = csp(response)
    assert policy["script-src"] == ["'self'"]
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'self'"]
    assert policy["img-src"] == ["'self'", "data:"]
    assert policy["connect-src"] == ["'self'", "ws:", "wss:"]
    assert "'unsafe-eval'" not in response["Content-Security-Policy"]
    assert inline_script_problems(response.content.decode()) == [], url


def test_simulator_loads_its_script_from_a_file(staff_client, web_channel):
    audit = ScriptAudit()
    audit.feed(staff_client.get("/simulator/").content.decode())
    assert audit.problems == [] and any(src.endswith("/js/simulator.js") for src in audit.external)


@pytest.mark.parametrize("url", ["/accounts/login/", "/admin/login/", "/healthz", "/api/v1/conversations/", "/nope/"])
def test_security_headers_on_every_response(client, url):
    response = client.get(url)
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "camera=()" in response["Permissions-Policy"] and "microphone=()" in response["Permissions-Policy"]


def test_login_page_has_no_inline_script(client):
    for url in ("/accounts/login/", "/admin/login/"):
        assert inline_script_problems(client.get(url).content.decode()) == []


def test_redoc_alone_may_start_a_blob_worker(client, settings):
    assert csp(client.get("/api/redoc/"))["worker-src"] == ["'self'", "blob:"]
    assert "worker-src" not in csp(client.get("/api/docs/"))


TEMPLATE_DIRS = [ROOT / "templates", *ROOT.glob("*/templates")]


def test_no_template_of_ours_has_inline_script():
    """Every project template (not the installed packages'), so a new page cannot slip an inline script past the
    policy. Django template tags are blanked first; a <script> with src is fine."""
    offenders = []
    for directory in TEMPLATE_DIRS:
        for path in directory.rglob("*.html"):
            text = re.sub(r"{%.*?%}|{{.*?}}", "x", path.read_text(), flags=re.S)
            for problem in inline_script_problems(text):
                offenders.append(f"{path.relative_to(ROOT)}: {problem}")
    assert offenders == []


def test_production_cookies_are_secure():
    import importlib
    import os

    env = {
        "DJANGO_SECRET_KEY": "p" * 50,
        "DJANGO_ALLOWED_HOSTS": "kefu.example.com",
        "KEFU_FIELD_KEYS": "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        "KEFU_BLIND_INDEX_KEY": "YmxpbmQtaW5kZXgta2V5LWZvci10ZXN0cy0wMTIzNDU2Nzg5",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        production = importlib.reload(importlib.import_module("config.settings.production"))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert production.SESSION_COOKIE_SECURE and production.SESSION_COOKIE_HTTPONLY
    assert production.SESSION_COOKIE_SAMESITE == "Lax" and production.CSRF_COOKIE_SECURE
    assert production.KEFU_CSP["connect-src"] == ["'self'", "wss:"]
    assert production.AXES_FAILURE_LIMIT == 5
    assert production.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"
