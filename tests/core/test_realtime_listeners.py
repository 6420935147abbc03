"""core.realtime records every event (sequence + backlog, one Lua round trip) and hands it to the channel layer
only when the group has members: real Redis, the real channels_redis layer."""

import asyncio
import json

import pytest
from channels.layers import get_channel_layer

from core import realtime
from core import redis as kredis


def _sends(monkeypatch) -> list[str]:
    """Groups handed to the channel layer (our own wrapper counted, the layer itself is real)."""
    sent: list[str] = []
    original = realtime._group_send

    def counting(group, message):
        sent.append(group)
        original(group, message)

    monkeypatch.setattr(realtime, "_group_send", counting)
    return sent


def test_an_event_without_listeners_is_numbered_and_kept_but_not_sent(redis_clean, monkeypatch):
    sent = _sends(monkeypatch)
    realtime._send("customer.4242", "message.created", {"id": 1, "content": "你好"})
    realtime._send("customer.4242", "conversation.updated", {"conversation_id": 7, "delivery": "sent"})
    assert sent == []
    events = realtime.events_since("customer.4242", 0)
    assert [(e["event"], e["seq"]) for e in events] == [("message.created", 1), ("conversation.updated", 2)]
    assert events[0]["payload"] == {"id": 1, "content": "你好"}
    assert realtime.last_seq("customer.4242") == 2
    # the backlog member is byte for byte json.dumps of the envelope (Lua builds it around the number)
    stored = redis_clean.zrange(kredis.key("rt", "log", "customer.4242"), 0, 0)[0]
    assert stored == json.dumps(events[0], ensure_ascii=False)


def test_the_backlog_keeps_only_the_configured_number_of_events(redis_clean, settings):
    settings.KEFU_REALTIME_BACKLOG = 3
    for n in range(5):
        realtime._send("conversation.99", "queue.position", {"n": n})
    assert [e["seq"] for e in realtime.events_since("conversation.99", 0)] == [3, 4, 5]
    assert redis_clean.ttl(kredis.key("rt", "log", "conversation.99")) > 0


def test_an_event_for_a_group_with_a_member_reaches_it(redis_clean, monkeypatch):
    sent = _sends(monkeypatch)
    layer = get_channel_layer()

    async def join() -> str:
        name = await layer.new_channel()
        await layer.group_add("conversation.77", name)
        return name

    name = asyncio.run(join())
    realtime._send("conversation.77", "conversation.updated", {"conversation_id": 77, "status": "human"})
    realtime._send("conversation.78", "conversation.updated", {"conversation_id": 78, "status": "human"})
    assert sent == ["conversation.77"]

    async def receive() -> dict:
        return await asyncio.wait_for(layer.receive(name), timeout=5)

    message = asyncio.run(receive())
    assert message["type"] == "realtime.event"
    assert message["envelope"]["seq"] == 1
    assert message["envelope"]["payload"] == {"conversation_id": 77, "status": "human"}


@pytest.mark.django_db
def test_realtime_publish_waits_for_commit(redis_clean, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        realtime.publish("customer.5", "message.created", {"n": 1})
    assert realtime.last_seq("customer.5") == 0
    callbacks[0]()
    assert realtime.last_seq("customer.5") == 1


def test_one_event_for_several_groups_is_numbered_in_each_and_sent_where_listened(redis_clean, monkeypatch):
    """``publish_many`` records the event in every group in one round trip: each group's own sequence number,
    each backlog member byte for byte its envelope, and the layer only for the group with a member."""
    sent = _sends(monkeypatch)
    realtime._send("customer.5", "queue.position", {"n": 0})  # customer.5 is one ahead of conversation.6
    layer = get_channel_layer()

    async def join() -> str:
        name = await layer.new_channel()
        await layer.group_add("conversation.6", name)
        return name

    asyncio.run(join())
    realtime._send_many(["customer.5", "conversation.6"], "message.created", {"id": 9, "content": "在吗"})
    assert sent == ["conversation.6"]
    for group, seq in (("customer.5", 2), ("conversation.6", 1)):
        event = realtime.events_since(group, seq - 1)[-1]
        assert (event["event"], event["seq"], event["group"]) == ("message.created", seq, group)
        assert event["payload"] == {"id": 9, "content": "在吗"}
        stored = redis_clean.zrange(kredis.key("rt", "log", group), -1, -1)[0]
        assert stored == json.dumps(event, ensure_ascii=False)
