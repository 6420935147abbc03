# ruff: noqa: F811  (pytest fixtures imported from tests.routing.conftest)
"""Customer personal data: encrypted fields with a keyed blind index for the phone, admin search by phone,
key rotation covering the new fields, and 退订 (unsubscribe) blocking proactive messages but not replies."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.utils import translation

from bots import pii, services
from bots.channels.base import InboundMessage
from bots.models import Customer, Message, Outbox
from bots.services import outbound, privacy, subscription
from core import crypto
from core.errors import ApplicationError
from core.models import AuditLog
from tests.routing.conftest import make_agent, make_group  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db


def _raw(customer_id: int, column: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM bots_customer WHERE id = %s", [customer_id])  # noqa: S608
        return cursor.fetchone()[0]


@pytest.fixture
def customer(web_channel):
    return Customer.objects.create(
        channel=web_channel,
        external_id="pii-1",
        nickname="小李",
        phone="+86 139-1234-5678",
        address="上海市幸福路88号",
        real_name="李雷",
    )


def test_phone_normalisation_and_the_blind_index():
    same = ["13912345678", "+86 139 1234 5678", "0086-139-1234-5678", "８６１３９１２３４５６７８", "(139) 1234-5678"]
    assert {pii.phone_normalize(p) for p in same} == {"13912345678"}
    assert len({pii.phone_blind_index(p) for p in same}) == 1
    assert pii.phone_blind_index("13912345679") != pii.phone_blind_index("13912345678")
    assert pii.phone_blind_index("") == ""
    # keyed: not a plain hash of the digits, and another key gives another index
    index = pii.phone_blind_index("13912345678")
    assert index != hashlib.sha256(b"13912345678").hexdigest()
    with override_settings(KEFU_BLIND_INDEX_KEY=base64.b64encode(os.urandom(32)).decode()):
        assert pii.phone_blind_index("13912345678") != index
    assert pii.phone_search_index("李雷") == "" and pii.phone_search_index("123") == ""
    assert pii.phone_search_index("139-1234-5678") == index


def test_pii_is_encrypted_at_rest_and_found_by_phone(customer, web_channel):
    for column, plaintext in (("phone", "1234"), ("address", "幸福路"), ("real_name", "李雷"), ("nickname", "小李")):
        stored = _raw(customer.pk, column)
        assert crypto.is_encrypted(stored) and plaintext not in stored
    assert _raw(customer.pk, "phone_index") == pii.phone_blind_index("13912345678")
    other = Customer.objects.create(channel=web_channel, external_id="pii-2", phone="13800000000")
    assert list(privacy.customers_with_phone("139 1234 5678")) == [customer]
    assert list(privacy.customers_with_phone("+8613800000000")) == [other]
    assert not privacy.customers_with_phone("13700000000").exists()
    # a change of the phone moves the index with it, also with update_fields
    other.phone = "13700000000"
    other.save(update_fields=["phone"])
    assert list(privacy.customers_with_phone("13700000000")) == [other]


def test_admin_search_by_phone_uses_the_blind_index_and_viewing_pii_is_audited(client, customer, web_channel):
    Customer.objects.create(channel=web_channel, external_id="pii-other", phone="13800000000", nickname="别人")
    admin = User.objects.create_superuser("root", "root@example.com", "Root-pass-long-1")
    client.force_login(admin)
    page = client.get("/admin/bots/customer/", {"q": "+86 139-1234-5678"})
    assert page.status_code == 200
    ids = [obj.pk for obj in page.context["cl"].result_list]
    assert ids == [customer.pk]
    assert "139****5678" in page.content.decode()
    # the routing app's "customers (all channels)" list searches phones the same way
    merged_list = client.get("/admin/routing/channelcustomer/", {"q": "0086 13912345678"})
    assert [obj.pk for obj in merged_list.context["cl"].result_list] == [customer.pk]
    by_external_id = client.get("/admin/bots/customer/", {"q": "pii-other"})
    assert [o.external_id for o in by_external_id.context["cl"].result_list] == ["pii-other"]
    # the change page shows the personal data: one "pii_view" audit entry, without the values
    change = client.get(f"/admin/bots/customer/{customer.pk}/change/")
    assert change.status_code == 200 and "幸福路" in change.content.decode()
    entry = AuditLog.objects.get(action="pii_view", target_pk=str(customer.pk))
    assert entry.actor_username == "root" and entry.after["via"] == "admin"
    assert set(entry.after["fields"]) == {"nickname", "phone", "address", "real_name"}
    assert "1234" not in str(entry.after) and "李雷" not in entry.target_repr


def test_rotate_keys_covers_the_pii_fields(customer):
    old = _raw(customer.pk, "phone")
    index = _raw(customer.pk, "phone_index")
    new_spec = f"{crypto.generate_key_spec('k9')},{_current_spec()}"
    with override_settings(KEFU_FIELD_KEYS=new_spec):
        call_command("rotate_keys", "--batch-size", "1", stdout=open(os.devnull, "w"))  # noqa: SIM115
        for column in ("phone", "address", "real_name", "nickname"):
            assert crypto.encrypted_with(_raw(customer.pk, column)) == "k9", column
        fresh = Customer.objects.get(pk=customer.pk)
        assert (fresh.phone, fresh.address, fresh.real_name) == ("+86 139-1234-5678", "上海市幸福路88号", "李雷")
    assert _raw(customer.pk, "phone") != old
    assert _raw(customer.pk, "phone_index") == index  # the blind index has its own key: rotation never moves it


def _current_spec() -> str:
    return settings.KEFU_FIELD_KEYS


# --- 退订 ------------------------------------------------------------------------------------------------------


def test_subscription_commands_are_normalised():
    assert pii.subscription_command("退订") == pii.UNSUBSCRIBE
    assert pii.subscription_command(" ＴＤ ") == pii.UNSUBSCRIBE
    assert pii.subscription_command("td") == pii.UNSUBSCRIBE
    assert pii.subscription_command("取消 订阅！") == pii.UNSUBSCRIBE
    assert pii.subscription_command("订阅") == pii.SUBSCRIBE
    assert pii.subscription_command("恢复") == pii.SUBSCRIBE
    for text in ("我想退订单", "退订怎么操作", "TDD", "", "hello"):
        assert pii.subscription_command(text) == "", text


def _say(channel, external_id: str, text: str, sender: str = "sub-1") -> Message:
    message, created = services.message_receive(
        channel=channel, inbound=InboundMessage(external_id=external_id, sender_id=sender, type="text", text=text)
    )
    assert created
    return message


def test_unsubscribe_blocks_proactive_messages_while_direct_replies_still_go(
    redis_clean, web_channel, greeting_rule, make_group, make_agent, django_capture_on_commit_callbacks
):
    from routing.services import handoff_start, ticket_claim, ticket_reply, ticket_resolve

    first = _say(web_channel, "s-1", "退订")
    confirmation = services.conversation_handle(message_id=first.id)
    customer = Customer.objects.get(external_id="sub-1")
    assert customer.unsubscribed_at is not None
    assert confirmation.reply_to_id == first.id
    with translation.override(settings.LANGUAGE_CODE):  # "您已退订…" once `make messages` has run
        assert confirmation.content == str(subscription.MSG_UNSUBSCRIBED)
    assert Outbox.objects.get(message=confirmation).status == Outbox.Status.PENDING  # the confirmation goes

    # a direct reply of the bot to a later message still goes
    hello = _say(web_channel, "s-2", "你好")
    reply = services.conversation_handle(message_id=hello.id)
    assert reply is not None and Outbox.objects.get(message=reply).status == Outbox.Status.PENDING

    # a hand-off, an agent's reply (goes), then resolve: the CSAT survey is proactive and is blocked
    group = make_group("g", auto_assign=False, is_default=True)
    agent = make_agent("ag1", [group])
    with django_capture_on_commit_callbacks(execute=True):
        ticket = handoff_start(hello.conversation_id, "customer_request", text="转人工")
        ticket_claim(ticket.id, agent.id)
        agent_reply = ticket_reply(ticket.id, agent.id, "您好，我来帮您")
        ticket_resolve(ticket.id, "other", agent.id)
    assert Outbox.objects.get(message=agent_reply).status == Outbox.Status.PENDING
    survey = Message.objects.filter(conversation_id=hello.conversation_id, trace__routing="csat_question").get()
    blocked = Outbox.objects.get(message=survey)
    assert (blocked.status, blocked.reason, survey.status) == ("blocked", "unsubscribed", "blocked")
    # an operator's "send again" cannot override the customer's 退订 while it stands
    with pytest.raises(ApplicationError) as refused:
        outbound.outbox_retry(outbox_id=blocked.id)
    assert refused.value.code == "outbox_refused"
    assert Outbox.objects.get(pk=blocked.pk).status == Outbox.Status.BLOCKED

    # 恢复 turns proactive messages back on
    again = _say(web_channel, "s-3", "恢复")
    services.conversation_handle(message_id=again.id)
    customer.refresh_from_db()
    assert customer.unsubscribed_at is None
    from routing.services import crossing

    notice = crossing.customer_tell(
        conversation_id=hello.conversation_id, text="回访", kind="csat_question", ticket_id=ticket.id
    )
    assert Outbox.objects.get(message=notice).status == Outbox.Status.PENDING


def test_proactive_classification(web_channel):
    customer = Customer.objects.create(channel=web_channel, external_id="cls-1")
    from bots.models import Conversation

    conversation = Conversation.objects.create(customer=customer, channel=web_channel)
    incoming = Message.objects.create(
        conversation=conversation,
        channel=web_channel,
        direction="in",
        sender="customer",
        content="转人工",
        status="received",
    )
    args = {"conversation": conversation, "sender": Message.Sender.SYSTEM, "reply_to": None}
    # while the customer's message is being handled, a system message answers it (queue position after 转人工)
    assert not subscription.is_proactive(trace={"routing": "queue_position"}, **args)
    assert subscription.is_proactive(trace={"routing": "csat_question"}, **args)  # a survey is always proactive
    Message.objects.filter(pk=incoming.pk).update(status="processed")
    assert subscription.is_proactive(trace={"routing": "queue_position"}, **args)  # later updates are
    assert not subscription.is_proactive(trace=None, conversation=conversation, sender="agent", reply_to=None)
    assert not subscription.is_proactive(trace=None, conversation=conversation, sender="bot", reply_to=incoming)
    # not unsubscribed: nothing is refused
    assert subscription.proactive_refusal(trace={"routing": "csat_question"}, **args) == ""


def test_console_card_shows_pii_and_the_agents_view_is_audited(redis_clean, web_channel, make_group, make_agent):
    from django.test import Client

    from routing.services import handoff_start

    group = make_group("pii", auto_assign=False, is_default=True)
    agent = make_agent("pii-agent", [group])
    customer = Customer.objects.create(
        channel=web_channel, external_id="pii-c", nickname="小周", phone="13600000000", address="幸福路1号"
    )
    from bots.models import Conversation

    conversation = Conversation.objects.create(customer=customer, channel=web_channel)
    handoff_start(conversation.id, "customer_request", text="转人工")
    client = Client()
    client.force_login(agent)
    card = client.get(f"/console/api/conversations/{conversation.id}/").json()["card"]
    assert card["pii"] == {"phone": "13600000000", "real_name": "", "address": "幸福路1号"}
    assert card["unsubscribed"] is False
    entry = AuditLog.objects.get(action="pii_view", target_pk=str(customer.pk))
    assert entry.actor_username == "pii-agent" and entry.after == {
        "fields": ["address", "nickname", "phone"],
        "via": "console",
    }
    # an agent of another group gets 404 and no audit entry
    outsider = make_agent("pii-out", [make_group("other", auto_assign=False)])
    client.force_login(outsider)
    assert client.get(f"/console/api/conversations/{conversation.id}/").status_code == 404
    assert AuditLog.objects.filter(action="pii_view").count() == 1
