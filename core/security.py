"""Security plumbing shared by HTTP and WebSocket: the client IP, the Content-Security-Policy, the WebSocket
origin check and the login lockout page (django-axes)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from django.conf import settings
from django.http import JsonResponse
from django.http.request import split_domain_port, validate_host
from django.shortcuts import render
from django.utils.translation import gettext as _

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


# --- client IP -------------------------------------------------------------------------------------------
def _valid_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_ip(request) -> str | None:
    """The client's address: REMOTE_ADDR, or with ``KEFU_TRUSTED_PROXY_COUNT`` = N > 0 the N-th address from the
    right of X-Forwarded-For (each trusted proxy appends the address it saw; anything further left can be forged
    by the client). Used by the audit log and by django-axes (AXES_CLIENT_IP_CALLABLE)."""
    meta = getattr(request, "META", {}) or {}
    proxies = getattr(settings, "KEFU_TRUSTED_PROXY_COUNT", 0)
    if proxies > 0:
        hops = [h for h in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
        if len(hops) >= proxies and (ip := _valid_ip(hops[-proxies])):
            return ip
    return _valid_ip(meta.get("REMOTE_ADDR", "") or "")


# --- Content-Security-Policy ---------------------------------------------------------------------------
def content_security_policy(path: str) -> str:
    """``KEFU_CSP`` with the sources of every ``KEFU_CSP_EXTRA`` entry whose path prefix matches added."""
    policy = {directive: list(sources) for directive, sources in settings.KEFU_CSP.items()}
    for prefix, extra in getattr(settings, "KEFU_CSP_EXTRA", {}).items():
        if path.startswith(prefix):
            for directive, sources in extra.items():
                policy.setdefault(directive, [])
                policy[directive] += [s for s in sources if s not in policy[directive]]
    return "; ".join(f"{d} {' '.join(s)}".strip() for d, s in policy.items())


# --- WebSocket origin ------------------------------------------------------------------------------------
def _origin_netloc(origin: str) -> tuple[str, str] | None:
    parts = urlsplit(origin)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname.lower()
    if ":" in host:  # IPv6
        host = f"[{host}]"
    netloc = host if port in (None, DEFAULT_PORTS[parts.scheme]) else f"{host}:{port}"
    return parts.scheme, netloc


def _trusted(origin: str) -> bool:
    """``origin`` matches CSRF_TRUSTED_ORIGINS (exact, or ``https://*.example.com``)."""
    for trusted in getattr(settings, "CSRF_TRUSTED_ORIGINS", []):
        if origin == trusted:
            return True
        if "://*." in trusted:
            scheme, suffix = trusted.split("://*", 1)
            if origin.startswith(scheme + "://") and origin.endswith(suffix):
                return True
    return False


def websocket_origin_allowed(scope) -> bool:
    """Same-origin check for a WebSocket handshake (against cross-site WebSocket hijacking, which session cookies
    would otherwise allow): the Origin must be the host the browser connected to (the Host header, itself one of
    ALLOWED_HOSTS) or be listed in CSRF_TRUSTED_ORIGINS. No Origin, "null" or a foreign origin is refused."""
    headers = {k.decode("latin1").lower(): v.decode("latin1") for k, v in scope.get("headers", [])}
    origin = headers.get("origin", "").strip().lower()
    if not origin or origin == "null":
        return False
    if _trusted(origin):
        return True
    parsed = _origin_netloc(origin)
    host = headers.get("host", "").strip().lower()
    if parsed is None or not host:
        return False
    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    scheme, netloc = parsed
    host_netloc = host
    for default in (":80", ":443"):
        if host_netloc.endswith(default) and DEFAULT_PORTS[scheme] == int(default[1:]):
            host_netloc = host_netloc[: -len(default)]
    return netloc == host_netloc


class WebSocketOriginValidator:
    """ASGI middleware refusing (HTTP 403 at the handshake) WebSockets whose Origin fails
    ``websocket_origin_allowed``; settings are read per connection."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not websocket_origin_allowed(scope):
            from channels.security.websocket import WebsocketDenier

            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


# --- login lockout (django-axes) -------------------------------------------------------------------------
def lockout_response(request, original_response=None, credentials=None):
    """AXES_LOCKOUT_CALLABLE: a Chinese page (or our JSON error) with HTTP 429."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60) if settings.AXES_COOLOFF_TIME else 0
    message = _(
        "Too many failed logins for this account from your address. Try again in %(minutes)d minutes, "
        "or ask an administrator to unlock it."
    ) % {"minutes": minutes}
    wants_json = request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")
    if wants_json or request.headers.get("X-Requested-With") == "XMLHttpRequest":
        return JsonResponse({"error": {"code": "locked_out", "message": message}}, status=429)
    context = {"message": message, "minutes": minutes, "failure_limit": settings.AXES_FAILURE_LIMIT}
    return render(request, "core/lockout.html", context, status=429)


try:
    from axes.backends import AxesStandaloneBackend
except ImportError:  # pragma: no cover - axes is a pinned runtime dependency
    AxesStandaloneBackend = object  # type: ignore[assignment,misc]


class RequestOptionalAxesBackend(AxesStandaloneBackend):
    """Test settings only: the axes backend, but ``authenticate()`` without a request (the test client's
    ``client.login``) is let through instead of raising. Every HTTP login (admin, /accounts/login/) passes its
    request and is checked exactly as in production, where ``axes.backends.AxesStandaloneBackend`` is used."""

    def authenticate(self, request=None, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
