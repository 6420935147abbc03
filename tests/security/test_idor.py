"""IDOR: an agent who guesses the id of another group's conversation or ticket gets a 404 from every console
endpoint (reads and actions), changes nothing, and cannot watch it over the console socket; the simulator only
ever reaches web-channel customers; the API needs model permissions, so an agent's token reads nothing."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Permission, User
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from bots.models import Channel, Customer, Message
from config.asgi import application
from core import realtime
from routing.models import Ticket, TicketEvent
from routing.services import handoff_start
from tests.routing.conftest import make_agent, make_customer, make_group, supervisor  # noqa: F401

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _post(client, url, body=None):
    return client.post(url, json.dumps(body or {}), content_type="application/json")


@pytest.fixture
def world(redis_clean, make_customer, make_group, make_agent, supervisor):  # noqa: F811
    pre = make_group("pre", auto_assign=False, is_default=True)
    vip = make_group("vip", auto_assign=False)
    alice = make_agent("alice", [pre])
    vera = make_agent("vera", [vip])
    mine = handoff_start(make_customer("张三").conversation.id, "customer_request", text="转人工")
    theirs = handoff_start(make_customer("李四").conversation.id, "anger", text="气死了")
    Ticket.objects.filter(pk=theirs.pk).update(group=vip)
    return {"pre": pre, "vip": vip, "alice": alice, "vera": vera, "boss": supervisor, "mine": mine, "theirs": theirs}


def _state(ticket: Ticket) -> tuple:
    ticket.refresh_from_db()
    return (
        ticket.status,
        ticket.group_id,
        ticket.assignee_id,
        Message.objects.filter(conversation_id=ticket.conversation_id).count(),
        TicketEvent.objects.filter(ticket=ticket).count(),
    )


def test_every_console_action_on_another_groups_ticket_is_404_and_changes_nothing(world):
    client = _client(world["alice"])
    theirs = world["theirs"]
    before = _state(theirs)
    actions = {
        "claim": {},
        "reply": {"text": "我来处理"},
        "note": {"text": "看看"},
        "transfer": {"group_id": world["pre"].id},
        "return": {"note": "还给机器人"},
        "resolve": {"category": "other"},
    }
    for action, body in actions.items():
        response = _post(client, f"/console/api/tickets/{theirs.id}/{action}/", body)
        assert response.status_code == 404, (action, response.content)
        assert response.json()["error"]["code"] == "not_found"
    assert _state(theirs) == before


def test_reads_by_guessed_ids_are_404_and_the_same_for_missing_ids(world):
    client = _client(world["alice"])
    theirs = world["theirs"]
    for url in (
        f"/console/api/conversations/{theirs.conversation_id}/",
        f"/console/api/conversations/{theirs.conversation_id}/timeline/",
        f"/console/api/tickets/{theirs.id}/",
    ):
        hidden = client.get(url)
        missing = client.get(
            url.replace(str(theirs.conversation_id if "conversations" in url else theirs.id), "987654")
        )
        # the same answer for "exists but not yours" and "does not exist": ids cannot be probed
        assert hidden.status_code == missing.status_code == 404, url
        assert hidden.json() == missing.json()
        assert "李四" not in hidden.content.decode()
    # the state lists only the agent's own group
    state = client.get("/console/api/state/").json()
    assert theirs.id not in {t["id"] for t in state["queue"]}
    assert "李四" not in json.dumps(state, ensure_ascii=False)
    # a VIP agent and the supervisor do see it
    assert _client(world["vera"]).get(f"/console/api/tickets/{theirs.id}/").status_code == 200
    assert _client(world["boss"]).get(f"/console/api/tickets/{theirs.id}/").status_code == 200


def test_an_agent_token_reads_nothing_from_the_api(world):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.create(user=world["alice"]).key)
    theirs = world["theirs"]
    for url in (
        f"/api/v1/conversations/{theirs.conversation_id}/",
        f"/api/v1/conversations/{theirs.conversation_id}/messages/",
        f"/api/v1/messages/?conversation={theirs.conversation_id}",
        "/api/v1/conversations/",
    ):
        response = api.get(url)
        assert response.status_code == 403, url
        assert "李四" not in response.content.decode()


def _socket(user) -> WebsocketCommunicator:
    client = _client(user)
    headers = [(b"host", b"testserver"), (b"origin", b"http://testserver")]
    headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    return WebsocketCommunicator(application, "/ws/console/", headers=headers)


@pytest.mark.django_db(transaction=True)
def test_console_socket_refuses_another_groups_conversation_in_hello_and_open(
    redis_clean,
    make_customer,  # noqa: F811
    make_group,  # noqa: F811
    make_agent,  # noqa: F811
):
    from asgiref.sync import sync_to_async

    pre = make_group("pre", auto_assign=False, is_default=True)
    vip = make_group("vip", auto_assign=False)
    alice = make_agent("alice", [pre])
    theirs = handoff_start(make_customer("李四").conversation.id, "anger", text="气死了")
    Ticket.objects.filter(pk=theirs.pk).update(group=vip)
    group = realtime.conversation_group(theirs.conversation_id)
    realtime._send(group, "message.created", {"conversation_id": theirs.conversation_id, "content": "秘密"})

    socket = _socket(alice)  # the session is made here: no database calls in the event loop

    async def scenario():
        assert (await socket.connect())[0]
        # asking for it in the hello (with a since that would replay its backlog)
        await socket.send_json_to({"type": "hello", "since": {group: 0}, "conversation_id": theirs.conversation_id})
        seen = []
        while True:
            message = await socket.receive_json_from(timeout=5)
            seen.append(message)
            if message.get("type") == "ready":
                break
        assert {"type": "error", "code": "not_found", "conversation_id": theirs.conversation_id} in seen
        assert seen[-1]["conversation_id"] is None and group not in seen[-1]["seq"]
        assert not [m for m in seen if m.get("group") == group]
        # opening it by id
        await socket.send_json_to({"type": "open", "conversation_id": theirs.conversation_id, "since": 0})
        assert await socket.receive_json_from(timeout=5) == {
            "type": "error",
            "code": "not_found",
            "conversation_id": theirs.conversation_id,
        }
        # ids of other types are refused too, and nothing of the conversation arrives live
        await socket.send_json_to({"type": "open", "conversation_id": str(theirs.conversation_id)})
        assert (await socket.receive_json_from(timeout=5))["code"] == "invalid"
        await sync_to_async(realtime._send)(group, "message.created", {"conversation_id": theirs.conversation_id})
        assert await socket.receive_nothing(timeout=0.5)
        await socket.disconnect()

    async_to_sync(scenario)()


def test_the_simulator_reaches_web_customers_only(redis_clean, admin_client, web_channel):
    bridge = Channel.objects.create(kind="bridge", slug="shop", name="shop", settings={}, secrets="")
    real = Customer.objects.create(channel=bridge, external_id="wxid_real", nickname="真实客户")
    for response in (
        admin_client.get(f"/simulator/api/customers/{real.id}/messages/"),
        admin_client.post(
            f"/simulator/api/customers/{real.id}/send/", json.dumps({"text": "冒充"}), content_type="application/json"
        ),
    ):
        assert response.status_code == 404
        assert "真实客户" not in response.content.decode()
    assert not Message.objects.filter(conversation__customer=real).exists()


@pytest.mark.django_db(transaction=True)
def test_the_simulator_socket_refuses_agents_and_non_web_customers(redis_clean, web_channel):
    from bots import services

    bridge = Channel.objects.create(kind="bridge", slug="shop", name="shop", settings={}, secrets="")
    real = Customer.objects.create(channel=bridge, external_id="wxid_real", nickname="真实客户")
    web = services.web_customer_create(channel=web_channel, nickname="测试")
    agent = User.objects.create_user("agent9", password="pw-long-enough-1")
    staff = User.objects.create_user("staff9", password="pw-long-enough-1", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_message", content_type__app_label="bots"))

    def connect(user, customer_id):
        client = _client(user)
        headers = [
            (b"host", b"testserver"),
            (b"origin", b"http://testserver"),
            (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
        ]

        async def scenario():
            socket = WebsocketCommunicator(application, f"/ws/simulator/{customer_id}/", headers=headers)
            connected, code = await socket.connect(timeout=5)
            if connected:
                await socket.disconnect()
            return connected, code

        return async_to_sync(scenario)()

    assert connect(staff, web.id) == (True, None)
    assert connect(staff, real.id) == (False, 4404)
    assert connect(agent, web.id) == (False, 4401)
