"""The inbound task sends the bot's reply itself (``KEFU_SEND_INLINE``): one Celery hop less per message, with the
same outbox row, claim and idempotency key. Real PostgreSQL, Redis, Celery workers and a fake bridge over HTTP."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from bots import services
from bots.channels.base import InboundMessage
from bots.models import Channel, Customer, Message, Outbox
from bots.services import outbound
from bots.tasks import process_message
from tests.conftest import running_worker, wait_for
from tests.fakes.wechat_api import FakeWeChat

SECRET = "inline-secret"


@pytest.fixture
def fake():
    with FakeWeChat.start() as server:
        server.bridge_secret = SECRET
        yield server


@pytest.fixture
def bridge(fake, db):
    return Channel.objects.create(
        kind=Channel.Kind.BRIDGE,
        slug="inline",
        name="inline",
        settings={"send_url": fake.base_url + "/bridge/send", "rate_per_hour": 0, "min_gap_seconds": 0},
        secrets=json.dumps({"secret": SECRET}),
    )


def _receive(channel: Channel, external_id: str, sender: str = "wxid_inline_1", text: str = "你好") -> Message:
    message, created = services.message_receive(
        channel=channel, inbound=InboundMessage(external_id=external_id, sender_id=sender, type="text", text=text)
    )
    assert created
    return message


def _reply_to(message: Message) -> Message | None:
    return Message.objects.filter(reply_to=message, direction=Message.Direction.OUT).first()


@pytest.mark.django_db(transaction=True)
def test_a_worker_of_the_inbound_queue_alone_delivers_the_reply(redis_clean, fake, bridge, greeting_rule, settings):
    settings.KEFU_SEND_INLINE = True
    message = _receive(bridge, "in-1")
    with running_worker(queues=("inbound",)):  # nobody consumes "outbound"
        reply = wait_for(lambda: (r := _reply_to(message)) and r.status == Message.Status.SENT and r)
    outbox = Outbox.objects.get(message=reply)
    assert (outbox.status, outbox.attempts) == (Outbox.Status.SENT, 1)
    deliveries = fake.requests_to("/bridge/send")
    assert len(deliveries) == 1
    assert deliveries[0].header("Idempotency-Key") == outbox.idempotency_key
    assert not redis_clean.exists(outbound._queued_key(outbox.pk))  # no send_outbox task was ever queued


@pytest.mark.django_db(transaction=True)
def test_with_inline_sending_off_the_reply_waits_for_the_outbound_queue(
    redis_clean, fake, bridge, greeting_rule, settings
):
    settings.KEFU_SEND_INLINE = False
    message = _receive(bridge, "in-2")
    with running_worker(queues=("inbound",)):
        reply = wait_for(lambda: _reply_to(message))
    assert Outbox.objects.get(message=reply).status == Outbox.Status.PENDING
    assert fake.requests_to("/bridge/send") == []
    with running_worker(queues=("outbound",)):
        wait_for(lambda: Outbox.objects.get(message=reply).status == Outbox.Status.SENT)
    assert len(fake.requests_to("/bridge/send")) == 1


@pytest.mark.django_db(transaction=True)
def test_a_redelivered_inbound_task_finishes_a_send_its_killed_run_left_pending(
    redis_clean, fake, bridge, greeting_rule, settings
):
    """The first run committed the reply and died before sending it (no send task queued): the broker redelivers
    the task (acks_late), which finds the message processed and sends the reply, once."""
    settings.KEFU_SEND_INLINE = True
    message = _receive(bridge, "in-3")
    services.conversation_handle(message_id=message.pk)  # decided and committed, send queued...
    redis_clean.flushdb()  # ...but the queued task and its mark died with the broker: as after a crash
    reply = _reply_to(message)
    assert Outbox.objects.get(message=reply).status == Outbox.Status.PENDING

    process_message.run(message.pk)  # the redelivered task, run in place
    outbox = Outbox.objects.get(message=reply)
    assert (outbox.status, outbox.attempts) == (Outbox.Status.SENT, 1)
    process_message.run(message.pk)  # yet another copy: nothing more goes out
    assert len(fake.requests_to("/bridge/send")) == 1


@pytest.mark.django_db(transaction=True)
def test_a_redelivered_inbound_task_leaves_a_queued_send_to_its_task(redis_clean, fake, bridge, greeting_rule):
    message = _receive(bridge, "in-4")
    services.conversation_handle(message_id=message.pk)  # queued a send_outbox task (and its mark)
    reply = _reply_to(message)
    assert outbound.reply_resume(reply_to_id=message.pk) == []
    assert Outbox.objects.get(message=reply).status == Outbox.Status.PENDING
    assert fake.requests_to("/bridge/send") == []


@pytest.mark.django_db(transaction=True)
def test_an_official_account_reply_is_never_sent_inline(redis_clean, fake, greeting_rule, settings):
    """OA replies stay queued so a retried push can still take them as a (free) passive reply."""
    settings.KEFU_SEND_INLINE = True
    channel = Channel.objects.create(
        kind=Channel.Kind.OA,
        slug="oa-inline",
        name="oa",
        settings={"api_base": fake.base_url, "app_id": "wx1234567890abcdef", "passive_budget": 0},
        secrets=json.dumps({"app_secret": "oa-secret", "token": "tok"}),
    )
    message = _receive(channel, "oa-1", sender="oOPENID1", text="你好")
    reply = services.conversation_handle(message_id=message.pk, send_inline=True)
    assert reply is not None
    outbox = Outbox.objects.get(message=reply)
    assert outbox.status == Outbox.Status.PENDING
    assert redis_clean.exists(outbound._queued_key(outbox.pk))  # handed to a send_outbox task


@pytest.mark.django_db
def test_a_message_of_a_known_customer_is_stored_in_few_statements(redis_clean, bridge, django_assert_max_num_queries):
    _receive(bridge, "q-1", sender="wxid_known")
    assert Customer.objects.filter(external_id="wxid_known").exists()
    with CaptureQueriesContext(connection) as captured:
        _receive(bridge, "q-2", sender="wxid_known")
    customer_selects = [q["sql"] for q in captured.captured_queries if 'FROM "bots_customer"' in q["sql"]]
    assert len(customer_selects) == 1  # read and locked at once, not get_or_create + a second locked read
    assert "FOR UPDATE" in customer_selects[0]
    with django_assert_max_num_queries(10):
        _receive(bridge, "q-3", sender="wxid_known")


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_during_an_inline_send_delivers_exactly_once(redis_clean, fake, bridge, greeting_rule):
    """``kill -9`` of a real worker (subprocess) while its inbound task waits on the bridge: the row is left
    'sending' under a dead claim; the sweeper hands it to a new worker, whose retry the bridge drops (same key)."""
    from tests.bots.test_worker_kill import Worker

    fake.delay_next("/bridge/send", 30.0)  # the bridge takes the message, then holds its answer
    message = _receive(bridge, "kill-inline-1")
    started: list[Worker] = []
    try:
        started.append(Worker("inline-a"))  # consumes inbound (and outbound): KEFU_SEND_INLINE defaults to on
        try:
            wait_for(lambda: len(fake.bridge_deliveries) == 1, timeout=60)
        except BaseException:
            print(started[0].output())
            raise
        reply = _reply_to(message)
        outbox = Outbox.objects.get(message=reply)
        assert outbox.status == Outbox.Status.SENDING
        assert not redis_clean.exists(outbound._queued_key(outbox.pk))  # sent inline: no send task was queued
        started[0].kill9()

        started.append(Worker("inline-b"))
        wait_for(lambda: services.sweep_outbox() == [outbox.pk], timeout=10)
        try:
            wait_for(lambda: Outbox.objects.get(pk=outbox.pk).status == Outbox.Status.SENT, timeout=60)
        except BaseException:
            print(started[1].output())
            raise
    finally:
        for worker in started:
            worker.stop()
    outbox.refresh_from_db()
    assert outbox.attempts == 2
    assert len(fake.bridge_deliveries) == 1 and fake.bridge_duplicates == 1
    assert Message.objects.get(pk=message.pk).status == Message.Status.PROCESSED


@pytest.mark.django_db(transaction=True)
def test_an_inline_reply_is_claimed_by_its_insert_and_sent_without_a_claim_update(
    redis_clean, fake, bridge, greeting_rule, monkeypatch
):
    """The row is stored 'sending' (attempt 1) under this process's claim record, so the send after commit needs
    no claim UPDATE; a process killed between the commit and the send leaves a row reply_resume takes over."""
    message = _receive(bridge, "in-claim")
    sends = []
    monkeypatch.setattr(outbound, "_send_inline", lambda outbox: sends.append(outbox))  # the process "dies" here
    services.conversation_handle(message_id=message.pk, send_inline=True)
    outbox = Outbox.objects.get(message=_reply_to(message))
    assert (outbox.status, outbox.attempts) == (Outbox.Status.SENDING, 1)
    assert redis_clean.get(outbound._claim_key(outbox.pk)) == outbound._claim_owner()
    assert [o.pk for o in sends] == [outbox.pk] and sends[0].preclaimed

    with CaptureQueriesContext(connection) as queries:
        assert outbound.outbox_send(outbox_id=outbox.pk, loaded=sends[0]) == Outbox.Status.SENT
    assert not [q for q in queries.captured_queries if "attempts" in q["sql"]]  # no claim UPDATE
    outbox.refresh_from_db()
    assert (outbox.status, outbox.attempts) == (Outbox.Status.SENT, 1)
    assert outbound.outbox_send(outbox_id=outbox.pk, loaded=sends[0]) == Outbox.Status.SENT  # the claim is used once
    assert len(fake.requests_to("/bridge/send")) == 1


@pytest.mark.django_db(transaction=True)
def test_a_preclaimed_row_whose_sender_died_is_resent_once_by_the_redelivered_task(
    redis_clean, fake, bridge, greeting_rule, monkeypatch
):
    message = _receive(bridge, "in-claim-dead")
    monkeypatch.setattr(outbound, "_send_inline", lambda outbox: None)
    services.conversation_handle(message_id=message.pk, send_inline=True)
    outbox = Outbox.objects.get(message=_reply_to(message))
    assert outbox.status == Outbox.Status.SENDING
    redis_clean.set(outbound._claim_key(outbox.pk), "elsewhere-host:1:dead")  # a claim nobody here holds...
    assert outbound.reply_resume(reply_to_id=message.pk) == ["in_flight"]  # ...is not taken while it may live
    redis_clean.set(outbound._claim_key(outbox.pk), f"{outbound.socket.gethostname()}:999999:dead")  # a dead pid
    assert outbound.reply_resume(reply_to_id=message.pk) == [Outbox.Status.SENT]
    outbox.refresh_from_db()
    assert (outbox.status, outbox.attempts) == (Outbox.Status.SENT, 2)
    assert len(fake.requests_to("/bridge/send")) == 1
