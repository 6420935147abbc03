"""The console socket (routing/consumers.py) over the real Redis channel layer: who may connect, which groups an
agent hears, heartbeats, and replay of missed events per group after a reconnect (once each, in order)."""

import asyncio

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser, User

from core import realtime
from routing.consumers import ConsoleConsumer
from routing.models import AgentProfile
from routing.services import handoff_start, ticket_note_add

pytestmark = pytest.mark.django_db(transaction=True)


def _socket(user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(ConsoleConsumer.as_asgi(), "/ws/console/")
    communicator.scope["user"] = user
    return communicator


async def _until_ready(communicator) -> tuple[list[dict], dict]:
    """Everything the server sends up to (and including) its ``ready`` message."""
    events = []
    while True:
        message = await communicator.receive_json_from(timeout=5)
        if message.get("type") == "ready":
            return events, message
        events.append(message)


@pytest.fixture
def world(redis_clean, make_customer, make_group, make_agent, supervisor):
    pre = make_group("pre", auto_assign=False, is_default=True)
    vip = make_group("vip", auto_assign=False)
    return {
        "pre": pre,
        "vip": vip,
        "a": make_agent("alice", [pre], presence="offline"),
        "v": make_agent("vera", [vip]),
        "boss": supervisor,
        "customer": make_customer,
    }


def test_anonymous_and_non_agents_are_refused(world):
    clerk = User.objects.create_user("clerk", password="pw-long-enough-1", is_staff=True)

    async def scenario():
        for user, code in ((AnonymousUser(), 4401), (clerk, 4403)):
            connected, close_code = await _socket(user).connect()
            assert (connected, close_code) == (False, code)

    async_to_sync(scenario)()


def test_hello_joins_the_agents_groups_and_the_heartbeat_is_recorded(world):
    a, pre, vip = world["a"], world["pre"], world["vip"]
    AgentProfile.objects.filter(user=a).update(last_seen=None)

    async def scenario():
        socket = _socket(a)
        assert (await socket.connect())[0]
        await socket.send_json_to({"type": "hello", "since": {}})
        _events, ready = await _until_ready(socket)
        assert set(ready["seq"]) == {f"agent.{a.id}", f"agents.group.{pre.id}"}
        assert set(ready["reload"]) == set(ready["seq"])  # first connect: load the snapshot over HTTP
        # an event of the agent's group arrives; one of another group does not
        mine = await sync_to_async(_handoff)(world)
        other = await sync_to_async(_vip_ticket)(world, vip)
        received = await socket.receive_json_from(timeout=5)
        assert received["event"] == "ticket.queued"
        assert received["group"] == f"agents.group.{pre.id}"
        assert received["payload"]["ticket"]["id"] == mine.id
        while not await socket.receive_nothing(timeout=0.3):
            extra = await socket.receive_json_from()
            assert extra["payload"].get("ticket", {}).get("id") != other.id
            assert extra["group"] == f"agents.group.{pre.id}"
        await socket.disconnect()

    async_to_sync(scenario)()
    assert AgentProfile.objects.get(user=a).last_seen is not None
    assert AgentProfile.objects.get(user=a).presence == "offline"  # a heartbeat never changes a chosen status


def _handoff(world):
    return handoff_start(world["customer"]().conversation.id, "customer_request")


def _vip_ticket(world, vip):
    from routing.models import RoutingRule

    RoutingRule.objects.get_or_create(name="vip", defaults={"reasons": "anger", "group": vip})
    return handoff_start(world["customer"]().conversation.id, "anger")


def test_supervisors_hear_every_group(world):
    async def scenario():
        socket = _socket(world["boss"])
        assert (await socket.connect())[0]
        await socket.send_json_to({"type": "hello", "since": {}})
        _events, ready = await _until_ready(socket)
        assert "supervisors" in ready["seq"]
        ticket = await sync_to_async(_vip_ticket)(world, world["vip"])
        received = await socket.receive_json_from(timeout=5)
        assert received["group"] == "supervisors"
        assert received["payload"]["ticket"]["id"] == ticket.id
        await socket.disconnect()

    async_to_sync(scenario)()


def test_reconnect_replays_what_was_missed_once_and_in_order(world):
    a, pre = world["a"], world["pre"]
    group = f"agents.group.{pre.id}"

    async def scenario():
        first = _socket(a)
        assert (await first.connect())[0]
        await first.send_json_to({"type": "hello", "since": {}})
        _events, ready = await _until_ready(first)
        since = dict(ready["seq"])
        ticket = await sync_to_async(_handoff)(world)
        live = await first.receive_json_from(timeout=5)
        since[live["group"]] = live["seq"]
        while not await first.receive_nothing(timeout=0.3):
            seen = await first.receive_json_from()
            since[seen["group"]] = max(since.get(seen["group"], 0), seen["seq"])
        await first.disconnect()
        # while the agent is away: two notes
        for text in ("第一条", "第二条"):
            await sync_to_async(ticket_note_add)(ticket.id, a.id, text)
        second = _socket(a)
        assert (await second.connect())[0]
        await second.send_json_to({"type": "hello", "since": since})
        replayed, ready = await _until_ready(second)
        notes = [e["payload"]["note"]["text"] for e in replayed if e["group"] == group]
        assert notes == ["第一条", "第二条"]
        assert [e["seq"] for e in replayed if e["group"] == group] == [since[group] + 1, since[group] + 2]
        assert ready["reload"] == []
        assert ready["seq"][group] == since[group] + 2
        assert await second.receive_nothing(timeout=0.3)
        await second.disconnect()

    async_to_sync(scenario)()


def test_a_gap_the_backlog_cannot_fill_asks_for_a_reload(world, settings):
    a, pre = world["a"], world["pre"]
    group = f"agents.group.{pre.id}"
    settings.KEFU_REALTIME_BACKLOG = 2

    async def scenario():
        for text in ("1", "2", "3", "4"):
            await sync_to_async(realtime._send)(group, "queue.position", {"group_id": pre.id, "queue": [], "n": text})
        socket = _socket(a)
        assert (await socket.connect())[0]
        await socket.send_json_to({"type": "hello", "since": {group: 1, f"agent.{a.id}": 99}})
        replayed, ready = await _until_ready(socket)
        assert [e["payload"]["n"] for e in replayed] == ["3", "4"]  # what is left is still sent
        assert set(ready["reload"]) == {group, f"agent.{a.id}"}  # trimmed backlog; counter reset
        await socket.disconnect()

    async_to_sync(scenario)()


def test_events_before_the_hello_are_replayed_in_order(world):
    a, pre = world["a"], world["pre"]
    group = f"agents.group.{pre.id}"

    async def scenario():
        for n in (1, 2):
            await sync_to_async(realtime._send)(group, "queue.position", {"group_id": pre.id, "queue": [], "n": n})
        socket = _socket(a)
        assert (await socket.connect())[0]
        await sync_to_async(realtime._send)(group, "queue.position", {"group_id": pre.id, "queue": [], "n": 3})
        await asyncio.sleep(0.2)  # its live copy reaches the consumer before the hello: dropped, it is in the replay
        await socket.send_json_to({"type": "hello", "since": {group: 0}})
        received, ready = await _until_ready(socket)
        assert [e["seq"] for e in received] == [1, 2, 3]
        assert ready["seq"][group] == 3
        assert await socket.receive_nothing(timeout=0.3)
        await socket.disconnect()

    async_to_sync(scenario)()


def test_open_watches_a_visible_conversation_only(world):
    a = world["a"]
    mine = _handoff(world)
    other = _vip_ticket(world, world["vip"])

    async def scenario():
        socket = _socket(a)
        assert (await socket.connect())[0]
        await socket.send_json_to({"type": "hello", "since": {}})
        await _until_ready(socket)
        await socket.send_json_to({"type": "open", "conversation_id": other.conversation_id})
        error = await socket.receive_json_from(timeout=5)
        assert error == {"type": "error", "code": "not_found", "conversation_id": other.conversation_id}
        await socket.send_json_to({"type": "open", "conversation_id": mine.conversation_id})
        _events, ready = await _until_ready(socket)
        group = f"conversation.{mine.conversation_id}"
        assert ready["conversation_id"] == mine.conversation_id and ready["reload"] == [group]
        await sync_to_async(realtime._send)(group, "conversation.updated", {"conversation_id": 1, "status": "human"})
        live = await socket.receive_json_from(timeout=5)
        assert (live["group"], live["event"]) == (group, "conversation.updated")
        await socket.send_json_to({"type": "close"})
        await socket.send_json_to({"type": "nonsense"})
        assert (await socket.receive_json_from(timeout=5))["code"] == "unknown_message"
        await sync_to_async(realtime._send)(group, "conversation.updated", {"conversation_id": 1, "status": "bot"})
        assert await socket.receive_nothing(timeout=0.3)
        await socket.disconnect()

    async_to_sync(scenario)()


def test_the_server_pings_and_the_clients_answer_is_a_heartbeat(world, monkeypatch):
    from routing import consumers

    monkeypatch.setattr(consumers, "PING_SECONDS", 0.2)
    monkeypatch.setattr(consumers, "HEARTBEAT_MIN_GAP", 0.0)
    a = world["a"]

    def last_seen():
        return AgentProfile.objects.get(user=a).last_seen

    async def scenario():
        socket = _socket(a)
        assert (await socket.connect())[0]
        first = await sync_to_async(last_seen)()
        assert first is not None  # on connect
        assert await socket.receive_json_from(timeout=5) == {"type": "ping"}
        await socket.send_json_to({"type": "heartbeat"})
        await asyncio.sleep(0.1)
        assert await sync_to_async(last_seen)() > first
        await socket.disconnect()

    async_to_sync(scenario)()
