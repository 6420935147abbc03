"""message_receive stores each message once under the customer's lock (one joined statement for a known customer)
and conversation_handle loads the message with one joined statement: real PostgreSQL, threads for concurrency."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection
from django.utils import timezone

from bots import services
from bots.channels.base import InboundMessage
from bots.models import Channel, Conversation, Customer, Message
from bots.services import inbound


@pytest.fixture
def bridge(db):
    return Channel.objects.create(kind=Channel.Kind.BRIDGE, slug="store", name="store", settings={})


def _inbound(external_id: str, sender: str = "wxid_store", text: str = "你好", **meta) -> InboundMessage:
    return InboundMessage(external_id=external_id, sender_id=sender, type="text", text=text, meta=meta)


def _receive_at_once(bridge, inbounds: list[InboundMessage]) -> list[tuple[Message, bool]]:
    """``message_receive`` of every message, each in its own thread, all released together by a barrier."""
    barrier, results, errors = threading.Barrier(len(inbounds)), [], []

    def deliver(inbound_message):
        try:
            barrier.wait()
            results.append(services.message_receive(channel=bridge, inbound=inbound_message))
        except Exception as exc:  # noqa: BLE001 - the assertion below shows it
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver, args=(inbound_message,)) for inbound_message in inbounds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return results


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("known_customer", [True, False])
def test_the_same_message_delivered_twice_at_once_is_stored_once(bridge, known_customer):
    if known_customer:
        services.message_receive(channel=bridge, inbound=_inbound("first"))
    results = _receive_at_once(bridge, [_inbound("dup", text="在吗") for _ in range(4)])
    assert sorted(created for _message, created in results) == [False, False, False, True]
    assert len({message.pk for message, _created in results}) == 1
    assert Message.objects.filter(channel=bridge, external_id="dup").count() == 1
    assert Conversation.objects.filter(customer__external_id="wxid_store").count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_first_messages_of_a_new_customer_at_once_make_one_customer_and_one_conversation(bridge):
    results = _receive_at_once(bridge, [_inbound(external_id, sender="wxid_new") for external_id in ("n1", "n2")])
    assert [created for _message, created in results] == [True, True]
    assert Customer.objects.filter(channel=bridge, external_id="wxid_new").count() == 1
    conversation = Conversation.objects.get(customer__external_id="wxid_new")
    assert set(conversation.messages.values_list("external_id", flat=True)) == {"n1", "n2"}


@pytest.mark.django_db
def test_a_new_customer_starts_with_its_nickname_and_a_stamped_conversation(bridge):
    inbound_message = InboundMessage(
        external_id="hello-1", sender_id="wxid_fresh", type="text", text="在吗", nickname="小李"
    )
    message, created = services.message_receive(channel=bridge, inbound=inbound_message)
    assert created
    customer = Customer.objects.get(channel=bridge, external_id="wxid_fresh")
    assert customer.nickname == "小李" and customer.phone_index == ""
    conversation = Conversation.objects.get(customer=customer)
    assert conversation.status == Conversation.Status.BOT and conversation.channel_id == bridge.id
    assert conversation.last_message_at is not None
    assert abs(conversation.last_message_at - message.created_at) < dt.timedelta(seconds=1)
    assert message.conversation_id == conversation.id


@pytest.mark.django_db
def test_a_customer_stored_without_a_conversation_gets_one(bridge):
    """Customers can exist without conversations (an import, an erased history): the first message finds the
    row (its INSERT … ON CONFLICT stores nothing), keeps it, and opens a conversation."""
    existing = Customer.objects.create(channel=bridge, external_id="wxid_known", nickname="老客户")
    message, created = services.message_receive(channel=bridge, inbound=_inbound("k1", sender="wxid_known"))
    again, created_again = services.message_receive(channel=bridge, inbound=_inbound("k1", sender="wxid_known"))
    assert created and not created_again and again.pk == message.pk
    assert list(Customer.objects.filter(channel=bridge, external_id="wxid_known")) == [existing]
    assert Customer.objects.get(pk=existing.pk).nickname == "老客户"
    conversation = Conversation.objects.get(customer=existing)
    assert message.conversation_id == conversation.id and conversation.last_message_at is not None


@pytest.mark.django_db(transaction=True)
def test_an_id_seen_from_another_sender_is_the_stored_message_not_an_error(bridge):
    first, created = services.message_receive(channel=bridge, inbound=_inbound("same-id", sender="wxid_a"))
    again, created_again = services.message_receive(channel=bridge, inbound=_inbound("same-id", sender="wxid_b"))
    assert created and not created_again
    assert again.pk == first.pk
    assert Message.objects.filter(external_id="same-id").count() == 1


@pytest.mark.django_db
def test_the_newest_conversation_is_reused_while_open_and_a_new_one_starts_after_the_idle_window(bridge, settings):
    first, _ = services.message_receive(channel=bridge, inbound=_inbound("c1"))
    second, _ = services.message_receive(channel=bridge, inbound=_inbound("c2"))
    assert second.conversation_id == first.conversation_id
    idle = dt.timedelta(minutes=settings.KEFU_CONVERSATION_IDLE_MINUTES + 1)
    Conversation.objects.filter(pk=first.conversation_id).update(last_message_at=timezone.now() - idle)
    third, _ = services.message_receive(channel=bridge, inbound=_inbound("c3"))
    assert third.conversation_id != first.conversation_id
    fourth, _ = services.message_receive(channel=bridge, inbound=_inbound("c4"))
    assert fourth.conversation_id == third.conversation_id
    # a conversation waiting for an agent stays the customer's however long the wait
    Conversation.objects.filter(pk=third.conversation_id).update(
        status=Conversation.Status.QUEUED, last_message_at=timezone.now() - idle
    )
    fifth, _ = services.message_receive(channel=bridge, inbound=_inbound("c5"))
    assert fifth.conversation_id == third.conversation_id
    # a resolved one inside the window is reopened for the bot
    Conversation.objects.filter(pk=third.conversation_id).update(status=Conversation.Status.RESOLVED)
    sixth, _ = services.message_receive(channel=bridge, inbound=_inbound("c6"))
    conversation = Conversation.objects.get(pk=sixth.conversation_id)
    assert (conversation.pk, conversation.status) == (third.conversation_id, Conversation.Status.BOT)


@pytest.mark.django_db
def test_the_joined_load_equals_the_orm_load(bridge):
    stored, _ = services.message_receive(
        channel=bridge, inbound=_inbound("load", text="我的订单 📦 還沒到", room_id="r1", mentioned=True)
    )
    customer = stored.conversation.customer
    customer.phone = "13800138000"
    customer.save()
    loaded = inbound._message_locked(stored.pk)
    orm = Message.objects.select_related("conversation__customer", "channel").get(pk=stored.pk)
    assert loaded is not None
    for field in Message._meta.concrete_fields:
        assert getattr(loaded, field.attname) == getattr(orm, field.attname), field.name
    assert loaded.content == "我的订单 📦 還沒到" and loaded.meta["room_id"] == "r1"
    assert loaded.conversation.pk == orm.conversation.pk and loaded.conversation.status == orm.conversation.status
    assert loaded.conversation.customer.phone == "13800138000"
    assert loaded.channel.slug == "store" and loaded.channel.settings == {}
    assert inbound._message_locked(10**9) is None
