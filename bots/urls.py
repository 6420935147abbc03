from django.urls import path

from bots import simulator

urlpatterns = [
    path("simulator/", simulator.simulator_page, name="simulator"),
    path("simulator/api/customers/", simulator.customer_create, name="simulator-customer-create"),
    path("simulator/api/customers/<int:customer_id>/messages/", simulator.customer_messages, name="simulator-messages"),
    path("simulator/api/customers/<int:customer_id>/send/", simulator.message_send, name="simulator-send"),
]
