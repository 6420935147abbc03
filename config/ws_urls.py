from django.urls import path

from bots.consumers import SimulatorConsumer

websocket_urlpatterns = [
    path("ws/simulator/<int:customer_id>/", SimulatorConsumer.as_asgi()),
]
