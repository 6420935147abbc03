"""The agent console's page and JSON endpoints (routing/views.py): who may use them, what each agent sees (404 for
anything else), and each action calling its service (claim race loser gets ``already_claimed``)."""

import json

import pytest
from django.contrib.auth.models import User
from django.test import Client

from bots.models import Message, Outbox
from routing.models import AgentProfile, CannedReply, Ticket, TicketEvent
from routing.services import handoff_start
from routing.views import ERROR_MESSAGES
from tests.routing.conftest import system_texts
from tests.security.test_headers import ScriptAudit

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _post(client, url, body=None):
    return client.post(url, json.dumps(body or {}), content_type="application/json")


@pytest.fixture
def setup(redis_clean, make_customer, make_group, make_agent, supervisor):
    pre = make_group("pre", auto_assign=False, is_default=True)
    vip = make_group("vip", auto_assign=False)
    a = make_agent("alice", [pre])
    b = make_agent("bob", [pre])
    v = make_agent("vera", [vip])
    mine = handoff_start(make_customer("张三").conversation.id, "customer_request", text="转人工")
    other = make_customer("李四").conversation
    other_ticket = handoff_start(other.id, "anger", text="气死了")
    Ticket.objects.filter(pk=other_ticket.pk).update(group=vip)
    return {"pre": pre, "vip": vip, "a": a, "b": b, "v": v, "boss": supervisor, "ticket": mine, "other": other_ticket}


def test_anonymous_users_are_sent_to_the_login_page_and_scripts_get_401(client):
    response = client.get("/console/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/console/"
    response = client.get("/console/api/state/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_users_who_are_neither_agents_nor_supervisors_are_refused(db):
    staff = User.objects.create_user("clerk", password="pw-long-enough-1", is_staff=True)
    client = _client(staff)
    assert client.get("/console/").status_code == 403
    assert client.get("/console/api/state/").status_code == 403


def test_console_page_loads_its_script_from_a_file_and_no_inline_script(setup):
    response = _client(setup["a"]).get("/console/")
    assert response.status_code == 200
    assert "script-src 'self'" in response["Content-Security-Policy"]
    audit = ScriptAudit()
    audit.feed(response.content.decode())
    assert audit.problems == []
    assert any(src.endswith("/js/console.js") for src in audit.external)
    assert "csrftoken" in response.cookies


def test_state_shows_an_agent_only_their_groups_and_a_supervisor_everything(setup):
    state = _client(setup["a"]).get("/console/api/state/").json()
    assert [t["id"] for t in state["queue"]] == [setup["ticket"].id]
    assert state["queue"][0]["customer_name"] == "张三"
    assert state["queue"][0]["position"] == 0
    assert state["me"]["agent"] and not state["me"]["supervisor"]
    assert state["me"]["group_ids"] == [setup["pre"].id]
    assert state["labels"]["status"]["queued"]
    assert {c["code"] for c in state["categories"]} >= {"question_answered", "other"}
    boss = _client(setup["boss"]).get("/console/api/state/").json()
    assert {t["id"] for t in boss["queue"]} == {setup["ticket"].id, setup["other"].id}
    assert boss["me"]["supervisor"] and not boss["me"]["agent"]


def test_another_groups_conversation_and_ticket_are_404(setup):
    client = _client(setup["a"])
    other = setup["other"]
    for url in (
        f"/console/api/conversations/{other.conversation_id}/",
        f"/console/api/conversations/{other.conversation_id}/timeline/",
        f"/console/api/tickets/{other.id}/",
        "/console/api/conversations/999999/",
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.json()["error"]["code"] == "not_found"
    response = _post(client, f"/console/api/tickets/{other.id}/claim/")
    assert response.status_code == 404
    # the supervisor sees it
    assert _client(setup["boss"]).get(f"/console/api/conversations/{other.conversation_id}/").status_code == 200


def test_second_claim_gets_already_claimed_in_the_agents_language(setup):
    ticket = setup["ticket"]
    first = _post(_client(setup["a"]), f"/console/api/tickets/{ticket.id}/claim/")
    assert first.status_code == 200
    assert first.json()["ticket"]["assignee_id"] == setup["a"].id
    second = _post(_client(setup["b"]), f"/console/api/tickets/{ticket.id}/claim/")
    assert second.status_code == 409
    error = second.json()["error"]
    assert error["code"] == "already_claimed"
    assert error["message"] == str(ERROR_MESSAGES["already_claimed"])
    assert error["message"] != "another agent already claimed this ticket"  # translated, not the service's text


def test_reply_note_transfer_resolve_through_the_services(setup):
    ticket, a, b = setup["ticket"], setup["a"], setup["b"]
    ca, cb = _client(a), _client(b)
    base = f"/console/api/tickets/{ticket.id}"
    assert _post(ca, f"{base}/reply/", {"text": "hi"}).json()["error"]["code"] == "not_assigned"
    assert _post(ca, f"{base}/claim/").status_code == 200
    assert _post(ca, f"{base}/reply/", {"text": "   "}).status_code == 400
    reply = _post(ca, f"{base}/reply/", {"text": "您好，我来帮您查一下"})
    assert reply.status_code == 201
    message = Message.objects.get(pk=reply.json()["message"]["id"])
    assert (message.sender, message.content) == (Message.Sender.AGENT, "您好，我来帮您查一下")
    assert Outbox.objects.filter(message=message).exists()  # through the outbox and its rate limits
    # B may not reply to A's conversation
    assert _post(cb, f"{base}/reply/", {"text": "我也来"}).json()["error"]["code"] == "not_your_ticket"
    messages_before = Message.objects.count()
    note = _post(ca, f"{base}/note/", {"text": "客户是老顾客，注意语气"})
    assert note.status_code == 201
    assert Message.objects.count() == messages_before  # a note never reaches the customer
    assert TicketEvent.objects.filter(ticket=ticket, kind="note").get().text == "客户是老顾客，注意语气"
    assert _post(ca, f"{base}/transfer/", {}).status_code == 400
    assert _post(ca, f"{base}/transfer/", {"agent_id": a.id}).status_code == 400
    moved = _post(ca, f"{base}/transfer/", {"agent_id": b.id, "note": "交给你了"})
    assert moved.status_code == 200
    assert moved.json()["ticket"]["assignee_id"] == b.id
    assert _post(cb, f"{base}/resolve/", {"category": "nonsense"}).status_code == 400
    resolved = _post(cb, f"{base}/resolve/", {"category": "question_answered"})
    assert resolved.status_code == 200
    ticket.refresh_from_db()
    assert (ticket.status, ticket.category, ticket.csat_state) == ("resolved", "question_answered", "asked")
    assert any("1" in text and "5" in text for text in system_texts(ticket.conversation_id)[-1:])
    # the whole story, notes included, for the agents
    detail = cb.get(f"/console/api/conversations/{ticket.conversation_id}/").json()
    kinds = [e["kind"] for e in detail["timeline"]]
    assert {"created", "claimed", "note", "transferred", "resolved"} <= set(kinds)
    assert detail["ticket"]["status"] == "resolved"
    assert [m["sender"] for m in detail["messages"]].count("agent") == 1
    assert detail["card"]["customer_id"] == ticket.customer_id


def test_transfer_to_a_group_and_return_to_the_bot(setup):
    ticket, a = setup["ticket"], setup["a"]
    ca = _client(a)
    base = f"/console/api/tickets/{ticket.id}"
    _post(ca, f"{base}/claim/")
    moved = _post(ca, f"{base}/transfer/", {"group_id": setup["vip"].id, "note": "VIP 客户"})
    assert moved.status_code == 200
    assert (moved.json()["ticket"]["status"], moved.json()["ticket"]["group_id"]) == ("queued", setup["vip"].id)
    cv = _client(setup["v"])
    assert _post(cv, f"{base}/return/", {"note": "机器人能处理"}).status_code == 200
    ticket.refresh_from_db()
    assert (ticket.status, ticket.category) == ("closed", "returned_to_bot")
    assert ticket.conversation.status == "bot"


def test_supervisor_can_reassign_someone_elses_conversation(setup):
    ticket = setup["ticket"]
    _post(_client(setup["a"]), f"/console/api/tickets/{ticket.id}/claim/")
    boss = _client(setup["boss"])
    state = boss.get("/console/api/state/").json()
    assert [t["id"] for t in state["open"]] == [ticket.id]
    moved = _post(boss, f"/console/api/tickets/{ticket.id}/transfer/", {"agent_id": setup["b"].id})
    assert moved.json()["ticket"]["assignee_id"] == setup["b"].id


def test_presence_toggle_and_canned_reply_search(setup):
    a = setup["a"]
    client = _client(a)
    assert _post(client, "/console/api/presence/", {"status": "away"}).json() == {"presence": "away"}
    assert AgentProfile.objects.get(user=a).presence == "away"
    assert _post(client, "/console/api/presence/", {"status": "offline"}).status_code == 400
    assert _post(client, "/console/api/presence/", {"status": "online"}).json() == {"presence": "online"}
    CannedReply.objects.create(shortcut="greet", title="问候", text="您好，我是{agent}")
    CannedReply.objects.create(shortcut="vip-gift", title="VIP 礼遇", text="礼品", group=setup["vip"])
    found = client.get("/console/api/canned/?q=gr").json()["replies"]
    assert [c["shortcut"] for c in found] == ["greet"]
    assert [c["shortcut"] for c in client.get("/console/api/canned/?q=").json()["replies"]] == ["greet"]


def test_actions_need_the_csrf_token(setup):
    client = Client(enforce_csrf_checks=True)
    client.force_login(setup["a"])
    response = _post(client, f"/console/api/tickets/{setup['ticket'].id}/claim/")
    assert response.status_code == 403
    setup["ticket"].refresh_from_db()
    assert setup["ticket"].status == "queued"


def test_bad_json_is_a_clean_400(setup):
    client = _client(setup["a"])
    response = client.post(
        f"/console/api/tickets/{setup['ticket'].id}/note/", "{not json", content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_json"
