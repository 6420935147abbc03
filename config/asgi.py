"""ASGI entry point: HTTP through Django, WebSockets through Channels (uvicorn serves both in the Procfile, daphne in
the embedded mode and the browser tests)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

from core.asgi import get_asgi_application  # noqa: E402  (Django's handler, one thread hop per request)

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from config.ws_urls import websocket_urlpatterns  # noqa: E402
from core.security import WebSocketOriginValidator  # noqa: E402

# Sockets: the Origin must be this site (ALLOWED_HOSTS + the Host header, or CSRF_TRUSTED_ORIGINS), else 403 at
# the handshake; then the session user is loaded and each consumer closes sockets it does not authorise.
application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": WebSocketOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
