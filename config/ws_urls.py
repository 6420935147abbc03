from django.urls import path

from bots.consumers import SimulatorConsumer
from routing.consumers import ConsoleConsumer

websocket_urlpatterns = [
    path("ws/simulator/<int:customer_id>/", SimulatorConsumer.as_asgi()),
    path("ws/console/", ConsoleConsumer.as_asgi()),
]
