"""WebSocket handshakes: a foreign Origin is refused before any consumer runs (cross-site WebSocket hijacking),
and a same-origin socket without a logged-in staff user is closed by the consumer."""

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Permission, User

from bots import services
from config.asgi import application
from core.security import websocket_origin_allowed

transactional = pytest.mark.django_db(transaction=True)  # the sockets read the session from another thread


def _scope(origin: str | None, host: str = "kefu.example.com") -> dict:
    headers = [(b"host", host.encode())] + ([(b"origin", origin.encode())] if origin is not None else [])
    return {"type": "websocket", "headers": headers}


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        ("https://kefu.example.com", "kefu.example.com", True),
        ("http://127.0.0.1:8000", "127.0.0.1:8000", True),
        ("https://kefu.example.com:443", "kefu.example.com", True),
        ("https://evil.example.com", "kefu.example.com", False),
        ("https://kefu.example.com.evil.io", "kefu.example.com", False),
        ("http://127.0.0.1:9999", "127.0.0.1:8000", False),
        ("null", "kefu.example.com", False),
        (None, "kefu.example.com", False),
        ("https://kefu.example.com", "", False),
    ],
)
def test_origin_rules(origin, host, allowed, settings):
    settings.ALLOWED_HOSTS = ["kefu.example.com", "127.0.0.1"]
    assert websocket_origin_allowed(_scope(origin, host)) is allowed


def test_origin_must_also_be_an_allowed_host(settings):
    settings.ALLOWED_HOSTS = ["kefu.example.com"]
    assert not websocket_origin_allowed(_scope("https://other.example.com", "other.example.com"))
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.example.com"]
    assert websocket_origin_allowed(_scope("https://console.example.com", "kefu.example.com"))


def _connect(path: str, origin: str, session_cookie: str | None = None):
    headers = [(b"host", b"testserver"), (b"origin", origin.encode())]
    if session_cookie:
        headers.append((b"cookie", f"sessionid={session_cookie}".encode()))

    async def scenario():
        communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, code = await communicator.connect(timeout=5)
        if connected:
            await communicator.disconnect()
        return connected, code

    return async_to_sync(scenario)()


@pytest.fixture
def staff_session(client):
    user = User.objects.create_user("staff", password="Staff-pass-long-1", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_message", content_type__app_label="bots"))
    client.force_login(user)
    return client.cookies["sessionid"].value


@transactional
def test_cross_origin_handshake_is_refused_even_with_a_valid_session(redis_clean, web_channel, staff_session):
    customer = services.web_customer_create(channel=web_channel, nickname="A")
    path = f"/ws/simulator/{customer.id}/"
    assert _connect(path, "http://testserver", staff_session) == (True, None)
    connected, _code = _connect(path, "http://evil.example.com", staff_session)
    assert not connected


@transactional
def test_same_origin_anonymous_socket_is_closed(redis_clean, web_channel):
    customer = services.web_customer_create(channel=web_channel, nickname="A")
    assert _connect(f"/ws/simulator/{customer.id}/", "http://testserver") == (False, 4401)


@transactional
def test_staff_without_the_message_permission_gets_no_simulator(client, redis_clean, web_channel):
    """Least privilege: the auditor (staff, audit log only) may neither open the simulator nor its socket."""
    auditor = User.objects.create_user("aud", password="Aud-pass-long-1", is_staff=True)
    client.force_login(auditor)
    customer = services.web_customer_create(channel=web_channel, nickname="A")
    assert client.get("/simulator/").status_code == 403
    assert client.post(f"/simulator/api/customers/{customer.id}/send/", "{}", "application/json").status_code == 403
    assert _connect(f"/ws/simulator/{customer.id}/", "http://testserver", client.cookies["sessionid"].value) == (
        False,
        4401,
    )


@pytest.mark.browser
@transactional
def test_live_server_refuses_a_cross_origin_handshake(asgi_server, redis_clean, web_channel, staff_session):
    """The real daphne process: HTTP 403 to the upgrade request from a foreign origin, even with a staff session
    cookie that the same-origin page uses successfully."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    customer = services.web_customer_create(channel=web_channel, nickname="A")
    url = asgi_server.replace("http://", "ws://") + f"/ws/simulator/{customer.id}/"

    async def handshake(origin: str):
        try:
            async with connect(
                url, origin=origin, additional_headers={"Cookie": f"sessionid={staff_session}"}, open_timeout=10
            ):
                return "open"
        except InvalidStatus as exc:
            return exc.response.status_code

    assert async_to_sync(handshake)(asgi_server) == "open"
    assert async_to_sync(handshake)("http://evil.example.com") == 403
