"""PIPL rights: a customer's export (JSON in a ZIP) and erasure through the API and the admin, their permissions
(agent 403, supervisor 200, unknown id 404), what an erasure removes and keeps (counts, CSAT, orders, rollups),
Redis cleanup, and the audit trail of an erasure (written, and impossible to change or delete)."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User
from django.db import DatabaseError, connection, transaction
from django.forms.models import model_to_dict
from django.utils import timezone
from rest_framework.test import APIClient

from bots.models import Conversation, Customer, Message, Outbox
from bots.services import privacy
from core import realtime
from core import redis as kredis
from core.demo import seed_groups
from core.models import AppendOnlyError, AuditLog
from routing.models import CustomerLink, Order, Person, Ticket, TicketEvent

pytestmark = pytest.mark.django_db
PHONE, ADDRESS, REAL_NAME = "13912345678", "北京市朝阳区幸福路88号", "韩梅梅"
SECRET_TEXT = "我的快递地址是幸福路88号"


def _user(username: str, group: str, *, staff: bool = True) -> User:
    seed_groups()
    user = User.objects.create_user(username, password="Long-password-1", is_staff=staff)
    user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def supervisor(db):
    return _user("sup", "supervisor")


@pytest.fixture
def agent(db):
    return _user("agt", "agent", staff=False)


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def person_data(web_channel, redis_clean, django_capture_on_commit_callbacks):
    """Customer A with everything (PII, two conversations, messages, a ticket with a note and CSAT, an order,
    dialogue context and realtime backlog) and customer B with their own messages."""
    a = Customer.objects.create(
        channel=web_channel, external_id="pipl-a", nickname="梅梅", phone=PHONE, address=ADDRESS, real_name=REAL_NAME
    )
    b = Customer.objects.create(channel=web_channel, external_id="pipl-b", nickname="路人", phone="13800000000")
    now = timezone.now()
    conv = Conversation.objects.create(customer=a, channel=web_channel, last_message_at=now)
    Conversation.objects.create(customer=a, channel=web_channel, last_message_at=now)
    incoming = Message.objects.create(
        conversation=conv,
        channel=web_channel,
        direction="in",
        sender="customer",
        content=SECRET_TEXT,
        status="processed",
        meta={"location": "幸福路"},
        trace={"kind": "answer", "stage": "faq", "faq_id": 7, "elapsed_ms": 3.5, "normalized": SECRET_TEXT},
    )
    reply = Message.objects.create(
        conversation=conv, channel=web_channel, direction="out", sender="bot", content="好的，已记录", status="sent"
    )
    Outbox.objects.create(message=reply, channel=web_channel, idempotency_key="pipl-1", status="sent")
    unsent = Message.objects.create(
        conversation=conv, channel=web_channel, direction="out", sender="system", content="请评价", status="pending"
    )
    Outbox.objects.create(message=unsent, channel=web_channel, idempotency_key="pipl-2", status="held")
    other_conv = Conversation.objects.create(customer=b, channel=web_channel, last_message_at=now)
    Message.objects.create(
        conversation=other_conv,
        channel=web_channel,
        direction="in",
        sender="customer",
        content="别人的秘密",
        status="processed",
    )
    person = Person.objects.create(name=REAL_NAME, note="VIP，住幸福路")
    CustomerLink.objects.create(customer=a, person=person)
    ticket = Ticket.objects.create(
        conversation=conv,
        customer=a,
        person=person,
        reason="customer_request",
        status="closed",
        csat_state="answered",
        csat_score=4,
        trigger_message=incoming,
    )
    TicketEvent.objects.create(ticket=ticket, kind="note", text="客户电话13912345678")
    Order.objects.create(
        number="SO-1",
        customer=a,
        person=person,
        amount=Decimal("99.00"),
        paid_at=now,
        items=[{"sku": "A1", "qty": 1, "remark": "送到幸福路88号"}],
    )
    client = kredis.client()
    client.set(kredis.key("ctx", conv.id), json.dumps({"slots": {"phone": PHONE}}))
    with django_capture_on_commit_callbacks(execute=True):  # realtime.publish sends after commit
        realtime.publish(
            realtime.conversation_group(conv.id),
            "message.created",
            {"conversation_id": conv.id, "content": SECRET_TEXT},
        )
        realtime.publish(
            realtime.customer_group(a.id), "message.created", {"conversation_id": conv.id, "content": SECRET_TEXT}
        )
        realtime.publish("supervisors", "message.created", {"conversation_id": conv.id, "content": SECRET_TEXT})
        realtime.publish("supervisors", "message.created", {"conversation_id": other_conv.id, "content": "留下"})
    return {"a": a, "b": b, "conv": conv, "ticket": ticket, "incoming": incoming}


def _zip(data: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: json.loads(archive.read(name)) for name in archive.namelist()}


# --- permissions -----------------------------------------------------------------------------------------------


def test_agent_is_refused_supervisor_allowed_unknown_id_is_404(person_data, supervisor, agent):
    a = person_data["a"]
    for path, method in ((f"/api/v1/customers/{a.id}/export/", "get"), (f"/api/v1/customers/{a.id}/erase/", "post")):
        assert getattr(APIClient(), method)(path, {"reason": "x"}).status_code in (401, 403)
        assert getattr(_api(agent), method)(path, {"reason": "x"}).status_code == 403
    operator = _user("op", "operator")
    assert _api(operator).get(f"/api/v1/customers/{a.id}/export/").status_code == 403
    assert _api(supervisor).get("/api/v1/customers/999999/export/").status_code == 404
    assert _api(supervisor).post("/api/v1/customers/999999/erase/", {"reason": "x"}).status_code == 404
    Customer.objects.get(pk=a.pk)  # nothing happened to A
    assert not AuditLog.objects.filter(action__in=["export", "erase"]).exists()


# --- export ------------------------------------------------------------------------------------------------------


def test_export_zip_holds_the_customers_data_decrypted_and_nobody_elses(person_data, supervisor):
    a = person_data["a"]
    response = _api(supervisor).get(f"/api/v1/customers/{a.id}/export/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert f"customer-{a.id}.zip" in response["Content-Disposition"]
    files = _zip(response.content)
    assert set(files) == {
        "manifest.json",
        "profile.json",
        "conversations.json",
        "messages.json",
        "tickets.json",
        "notes.json",
        "csat.json",
        "orders.json",
        "audit.json",
    }
    profile = files["profile.json"]["customer"]
    assert (profile["phone"], profile["address"], profile["real_name"]) == (PHONE, ADDRESS, REAL_NAME)
    assert files["profile.json"]["person"]["note"] == "VIP，住幸福路"
    contents = [m["content"] for m in files["messages.json"]]
    assert SECRET_TEXT in contents and "好的，已记录" in contents
    assert len(files["conversations.json"]) == 2
    everything = json.dumps(files, ensure_ascii=False)
    assert "别人的秘密" not in everything and "13800000000" not in everything and "路人" not in everything
    assert files["notes.json"][0]["text"] == "客户电话13912345678"
    assert files["csat.json"][0]["score"] == 4
    assert files["orders.json"][0]["number"] == "SO-1"
    assert files["manifest.json"]["counts"]["messages"] == 3
    # audited: who exported whom, counts only
    entry = AuditLog.objects.get(action="export", target_pk=str(a.id))
    assert entry.actor_username == "sup" and entry.after["counts"]["messages"] == 3
    assert PHONE not in json.dumps(entry.after) and "梅梅" not in entry.target_repr
    # a second export lists the first in its audit.json
    again = _zip(_api(supervisor).get(f"/api/v1/customers/{a.id}/export/", HTTP_ACCEPT="application/zip").content)
    assert [e["action"] for e in again["audit.json"]] == ["export"]


# --- erasure -----------------------------------------------------------------------------------------------------


def _rollup_today() -> dict:
    from analytics import services as analytics
    from analytics.models import DailyStats

    day = timezone.localdate()
    analytics.rollup_day(day=day)
    row = DailyStats.objects.get(day=day)
    return {k: v for k, v in model_to_dict(row).items() if k not in ("id", "computed_at", "updated_at")}


def test_erase_removes_pii_and_content_but_keeps_counts_and_rollups(
    person_data, supervisor, django_capture_on_commit_callbacks
):
    a, conv = person_data["a"], person_data["conv"]
    rollup_before = _rollup_today()
    counts_before = privacy.customer_counts(a.id)
    assert _api(supervisor).post(f"/api/v1/customers/{a.id}/erase/", {}).status_code == 400  # a reason is required
    with django_capture_on_commit_callbacks(execute=True):
        response = _api(supervisor).post(f"/api/v1/customers/{a.id}/erase/", {"reason": "用户申请删除 (PIPL 第47条)"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["already_erased"] is False and body["changed"]["messages"] == 3
    assert body["before"]["messages"] == body["after"]["messages"] == 3
    assert body["changed"]["unsent_blocked"] == 1  # a reply not sent yet never goes out (with the placeholder)
    assert Outbox.objects.get(idempotency_key="pipl-2").reason == "erased"
    assert body["after"]["messages_with_content"] == 0

    a.refresh_from_db()
    assert (a.nickname, a.phone, a.address, a.real_name, a.phone_index) == ("", "", "", "", "")
    assert a.erased_at is not None and a.external_id == f"erased-{a.id}"
    assert not privacy.customers_with_phone(PHONE).exists()
    placeholder = privacy.placeholder()  # "[已删除]" once `make messages` has run
    for message in Message.objects.filter(conversation__customer=a):
        assert message.content == placeholder and message.redacted_at is not None
        assert "normalized" not in (message.trace or {}) and "location" not in message.meta
    incoming = Message.objects.get(pk=person_data["incoming"].pk)
    assert incoming.trace == {"kind": "answer", "stage": "faq", "faq_id": 7, "elapsed_ms": 3.5}  # what rollups read
    assert Message.objects.get(conversation__customer=person_data["b"]).content == "别人的秘密"
    assert TicketEvent.objects.get(ticket=person_data["ticket"]).text == placeholder
    person = Person.objects.get(links__customer=a)
    assert (person.name, person.note) == ("", "")
    order = Order.objects.get(number="SO-1")
    assert order.items == [{"sku": "A1", "qty": 1}] and order.amount == Decimal("99.00")
    ticket = Ticket.objects.get(pk=person_data["ticket"].pk)
    assert ticket.csat_score == 4  # aggregates stay
    assert privacy.customer_counts(a.id) == {**counts_before, "messages_with_content": 0}
    assert _rollup_today() == rollup_before

    # Redis: dialogue context and realtime backlogs that quote the customer are gone, others stay
    client = kredis.client()
    assert not client.exists(kredis.key("ctx", conv.id))
    assert realtime.last_seq(realtime.conversation_group(conv.id)) == 1  # the backlog existed
    assert realtime.events_since(realtime.conversation_group(conv.id), 0) == []
    assert realtime.events_since(realtime.customer_group(a.id), 0) == []
    left = [e["payload"]["content"] for e in realtime.events_since("supervisors", 0)]
    assert left == ["留下"]

    # idempotent: a second erasure changes nothing more and says so
    again = _api(supervisor).post(f"/api/v1/customers/{a.id}/erase/", {"reason": "重复请求"}).json()
    assert again["already_erased"] is True and again["changed"]["messages"] == 0
    assert again["erased_at"] == body["erased_at"]


def test_the_audit_trail_of_an_erasure_exists_and_cannot_be_changed(person_data, supervisor):
    a = person_data["a"]
    _api(supervisor).post(f"/api/v1/customers/{a.id}/erase/", {"reason": "用户申请删除"}, REMOTE_ADDR="10.1.2.3")
    entry = AuditLog.objects.get(action="erase", target_pk=str(a.id))
    assert (entry.actor_username, entry.actor_id, entry.target_model) == ("sup", supervisor.id, "bots.customer")
    assert entry.created_at > timezone.now() - dt.timedelta(minutes=1)
    assert entry.before["counts"]["messages"] == 3
    assert set(entry.before["personal_fields"]) == {"nickname", "phone", "address", "real_name"}
    assert entry.after["changed"]["messages"] == 3 and entry.after["reason"] == "用户申请删除"
    stored = json.dumps([entry.before, entry.after, entry.target_repr], ensure_ascii=False)
    for plaintext in (PHONE, ADDRESS, REAL_NAME, "梅梅", SECRET_TEXT):
        assert plaintext not in stored
    # append-only: the ORM refuses, and so does PostgreSQL (triggers) for raw SQL
    with pytest.raises(AppendOnlyError):
        AuditLog.objects.filter(pk=entry.pk).update(action="nothing")
    with pytest.raises(AppendOnlyError):
        entry.delete()
    for sql in ("UPDATE core_auditlog SET action = 'x' WHERE id = %s", "DELETE FROM core_auditlog WHERE id = %s"):
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [entry.pk])
    assert AuditLog.objects.get(pk=entry.pk).action == "erase"


# --- admin -------------------------------------------------------------------------------------------------------


def test_admin_export_and_erase_actions_with_confirmation(client, person_data, supervisor, agent):
    a = person_data["a"]
    client.force_login(supervisor)
    url = "/admin/bots/customer/"
    export = client.post(url, {"action": "export_customer_data", "_selected_action": [a.id]})
    assert export.status_code == 200 and export["Content-Type"] == "application/zip"
    assert SECRET_TEXT in json.dumps(_zip(export.content)["messages.json"], ensure_ascii=False)
    # erase: first a confirmation page, nothing erased yet
    confirm = client.post(url, {"action": "erase_customer_data", "_selected_action": [a.id]})
    assert confirm.status_code == 200 and b"kefu-erase-confirm" in confirm.content
    assert Customer.objects.get(pk=a.id).erased_at is None
    # confirmed without a reason: asked again
    client.post(url, {"action": "erase_customer_data", "_selected_action": [a.id], "confirm": "yes"})
    assert Customer.objects.get(pk=a.id).erased_at is None
    done = client.post(
        url, {"action": "erase_customer_data", "_selected_action": [a.id], "confirm": "yes", "reason": "用户申请"}
    )
    assert done.status_code == 302
    assert Customer.objects.get(pk=a.id).erased_at is not None
    assert AuditLog.objects.filter(action="erase", target_pk=str(a.id), actor_username="sup").count() == 1
    # an operator (staff, may view messages but not customers' data rights) has neither action
    operator = _user("op2", "operator")
    client.force_login(operator)
    refused = client.post(url, {"action": "erase_customer_data", "_selected_action": [person_data["b"].id]})
    assert refused.status_code == 403
    assert Customer.objects.get(pk=person_data["b"].id).erased_at is None
