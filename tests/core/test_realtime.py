"""Realtime events over the real Redis channel layer: live delivery and replay after a reconnect."""

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser, Permission, User

from bots import services
from bots.channels.base import InboundMessage
from bots.consumers import SimulatorConsumer
from core import realtime

pytestmark = pytest.mark.django_db(transaction=True)


def _communicator(customer_id: int, user, since: int | None = None) -> WebsocketCommunicator:
    path = f"/ws/simulator/{customer_id}/" + (f"?since={since}" if since is not None else "")
    communicator = WebsocketCommunicator(SimulatorConsumer.as_asgi(), path)
    communicator.scope["user"] = user
    communicator.scope["url_route"] = {"kwargs": {"customer_id": customer_id}}
    return communicator


def test_events_are_pushed_live_and_replayed_after_reconnect(redis_clean, web_channel):
    staff = User.objects.create_user("staff", password="pw-long-enough-1", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_message", content_type__app_label="bots"))
    customer = services.web_customer_create(channel=web_channel, nickname="A")

    async def scenario():
        first = _communicator(customer.id, staff)
        connected, _ = await first.connect()
        assert connected
        await sync_to_async(services.message_receive)(
            channel=web_channel,
            inbound=InboundMessage(external_id="rt-1", sender_id=customer.external_id, type="text", text="一"),
        )
        live = await first.receive_json_from(timeout=5)
        assert live["event"] == "message.created"
        assert live["payload"]["content"] == "一"
        await first.disconnect()
        # while disconnected, two more events happen
        for i, text in ((2, "二"), (3, "三")):
            await sync_to_async(services.message_receive)(
                channel=web_channel,
                inbound=InboundMessage(external_id=f"rt-{i}", sender_id=customer.external_id, type="text", text=text),
            )
        second = _communicator(customer.id, staff, since=live["seq"])
        connected, _ = await second.connect()
        assert connected
        replayed = [await second.receive_json_from(timeout=5) for _ in range(2)]
        assert [e["payload"]["content"] for e in replayed] == ["二", "三"]
        assert [e["seq"] for e in replayed] == [live["seq"] + 1, live["seq"] + 2]
        assert await second.receive_nothing(timeout=0.3)
        await second.disconnect()

    async_to_sync(scenario)()


def test_anonymous_socket_is_refused(redis_clean, web_channel):
    customer = services.web_customer_create(channel=web_channel, nickname="A")

    async def scenario():
        communicator = _communicator(customer.id, AnonymousUser())
        connected, code = await communicator.connect()
        assert not connected
        assert code == 4401

    async_to_sync(scenario)()


def test_events_since_reads_the_backlog_in_order(redis_clean, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(5):
            realtime.publish("customer.999", "message.created", {"n": n})
    events = realtime.events_since("customer.999", 2)
    assert [e["payload"]["n"] for e in events] == [2, 3, 4]
    assert [e["seq"] for e in events] == [3, 4, 5]
