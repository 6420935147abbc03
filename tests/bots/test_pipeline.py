"""The message path end to end on the real PostgreSQL, Redis and a real Celery worker."""

import datetime as dt
import uuid

import pytest
from django.utils import timezone

from bots import services
from bots.channels.base import InboundMessage
from bots.models import Customer, Message, Outbox
from tests.conftest import running_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _inbound(text: str, external_id: str | None = None, sender: str = "web-cust-1") -> InboundMessage:
    return InboundMessage(external_id=external_id or uuid.uuid4().hex, sender_id=sender, type="text", text=text)


def _replies():
    return list(Message.objects.filter(direction="out").order_by("id"))


def test_greeting_is_answered_by_the_worker(celery_worker, web_channel, greeting_rule):
    message, created = services.message_receive(channel=web_channel, inbound=_inbound("你好呀"))
    assert created
    replies = wait_for(lambda: [r for r in _replies() if r.status == Message.Status.SENT])
    assert len(replies) == 1
    assert replies[0].content.startswith("您好")
    assert replies[0].reply_to_id == message.id
    assert replies[0].trace["stage"] == "keyword"
    assert replies[0].trace["rule_id"] == greeting_rule.id
    message.refresh_from_db()
    assert message.status == Message.Status.PROCESSED
    assert Outbox.objects.get(message=replies[0]).status == Outbox.Status.SENT


def test_same_inbound_id_twice_is_processed_once(celery_worker, web_channel, greeting_rule):
    first, created_first = services.message_receive(channel=web_channel, inbound=_inbound("你好", "dup-1"))
    second, created_second = services.message_receive(channel=web_channel, inbound=_inbound("你好", "dup-1"))
    assert (created_first, created_second) == (True, False)
    assert first.id == second.id
    wait_for(lambda: _replies() and _replies()[0].status == Message.Status.SENT)
    # a duplicate task for the same message (redelivery, sweeper) must not answer again
    from bots.tasks import process_message

    process_message.delay(first.id)
    services.sweep_unprocessed(older_than_seconds=0)
    process_message.delay(first.id)
    wait_for(lambda: Message.objects.get(pk=first.id).status == Message.Status.PROCESSED)
    import time

    time.sleep(1.0)  # give the duplicate tasks time to run; they must be no-ops
    assert Message.objects.filter(direction="in").count() == 1
    assert len(_replies()) == 1


def test_message_posted_while_no_worker_runs_is_answered_when_one_starts(redis_clean, web_channel, greeting_rule):
    message, _ = services.message_receive(channel=web_channel, inbound=_inbound("你好"))
    import time

    time.sleep(0.5)
    message.refresh_from_db()
    assert message.status == Message.Status.RECEIVED  # nothing processed it: no worker
    assert _replies() == []
    assert redis_clean.llen("kefu:celery:inbound") == 1  # the task waits in the real broker
    with running_worker():
        wait_for(lambda: _replies() and _replies()[0].status == Message.Status.SENT)
    assert len(_replies()) == 1


def test_sweeper_requeues_a_message_whose_task_was_lost(redis_clean, web_channel, greeting_rule):
    message, _ = services.message_receive(channel=web_channel, inbound=_inbound("你好"))
    redis_clean.flushdb()  # the broker lost the task (Redis restarted without persistence)
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - dt.timedelta(minutes=5))
    assert services.sweep_unprocessed() == [message.id]
    with running_worker():
        wait_for(lambda: _replies() and _replies()[0].status == Message.Status.SENT)
    assert len(_replies()) == 1


def test_a_waiting_backlog_is_swept_into_the_queue_once_not_at_every_sweep(redis_clean, web_channel, greeting_rule):
    """A backlog older than KEFU_SWEEP_AFTER_SECONDS looks unprocessed: the sweeper queues each message once per
    mark period, so repeated sweeps do not pile copies onto the queue the messages already wait in."""
    messages = [services.message_receive(channel=web_channel, inbound=_inbound("你好", f"bk-{i}"))[0] for i in range(3)]
    ids = sorted(m.id for m in messages)
    assert redis_clean.llen("kefu:celery:inbound") == 3  # queued by the webhook path
    assert sorted(services.sweep_unprocessed(older_than_seconds=0)) == ids
    assert services.sweep_unprocessed(older_than_seconds=0) == []
    assert services.sweep_unprocessed(older_than_seconds=0) == []
    assert redis_clean.llen("kefu:celery:inbound") == 6  # one sweep's copies, not one per sweep
    redis_clean.delete(*[f"kefu:inbound:swept:{pk}" for pk in ids])  # the marks expired (or Redis was flushed)
    assert sorted(services.sweep_unprocessed(older_than_seconds=0)) == ids
    with running_worker():
        wait_for(lambda: len(_replies()) == 3 and all(r.status == Message.Status.SENT for r in _replies()))
    assert len(_replies()) == 3


def test_unknown_text_gets_the_fallback_with_a_trace(celery_worker, web_channel, greeting_rule):
    services.message_receive(channel=web_channel, inbound=_inbound("量子纠缠是什么"))
    reply = wait_for(lambda: _replies() and _replies()[0])
    assert reply.trace["kind"] == "fallback"
    assert "elapsed_ms" in reply.trace


def test_message_content_and_nickname_are_encrypted_at_rest(web_channel):
    services.message_receive(
        channel=web_channel,
        inbound=InboundMessage(
            external_id="enc-1", sender_id="web-x", type="text", text="我的手机号13800138000", nickname="李雷"
        ),
    )
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT content FROM bots_message")
        (stored,) = cursor.fetchone()
        cursor.execute("SELECT nickname FROM bots_customer")
        (nickname,) = cursor.fetchone()
    assert "13800138000" not in stored and stored.startswith("kefu1$")
    assert "李雷" not in nickname and nickname.startswith("kefu1$")
    assert Message.objects.get(external_id="enc-1").content == "我的手机号13800138000"
    assert Customer.objects.get(external_id="web-x").nickname == "李雷"


def test_new_conversation_after_the_inactivity_window(web_channel):
    first, _ = services.message_receive(channel=web_channel, inbound=_inbound("在吗"))
    again, _ = services.message_receive(channel=web_channel, inbound=_inbound("还在吗"))
    assert again.conversation_id == first.conversation_id
    from bots.models import Conversation

    Conversation.objects.filter(pk=first.conversation_id).update(last_message_at=timezone.now() - dt.timedelta(hours=2))
    later, _ = services.message_receive(channel=web_channel, inbound=_inbound("你好"))
    assert later.conversation_id != first.conversation_id
