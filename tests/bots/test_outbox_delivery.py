"""The outbox sender against a real fake WeChat/bridge HTTP server, the real PostgreSQL and Redis: statuses,
held and blocked rows with their reasons, backoff, idempotent retries, take-over of dead senders, tokens."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import threading
import time

import pytest
from django.utils import timezone

from bots import services
from bots.channels.oa import WeChatApiClient
from bots.models import Channel, Conversation, Customer, Message, Outbox
from bots.ratelimit_math import REASON_MIN_GAP, REASON_OUTSIDE_WINDOW, REASON_RATE_LIMIT, REASON_WECOM_QUOTA
from bots.services import outbound
from bots.tokens import RedisTokenStore
from tests.conftest import wait_for
from tests.fakes.wechat_api import FakeWeChat

SECRET = "bridge-shared-secret"


@pytest.fixture
def fake():
    with FakeWeChat.start() as server:
        server.bridge_secret = SECRET
        yield server


def _channel(kind: str, slug: str, fake: FakeWeChat, **settings) -> Channel:
    if kind == "bridge":
        config = {"send_url": fake.base_url + "/bridge/send", "timeout": 2, **settings}
        secrets = {"secret": SECRET}
    elif kind == "oa":
        config = {"api_base": fake.base_url, "app_id": "wx1234567890abcdef", **settings}
        secrets = {"app_secret": "oa-secret", "token": "tok"}
    else:
        config = {"api_base": fake.base_url, "corp_id": "ww3f8a2c91d0b7e456", "open_kfid": "wkOPEN", **settings}
        secrets = {"secret": "kf-secret", "token": "tok"}
    return Channel.objects.create(kind=kind, slug=slug, name=slug, settings=config, secrets=json.dumps(secrets))


def _conversation(channel: Channel, customer_id: str = "wxid_customer_1") -> Conversation:
    customer = Customer.objects.create(channel=channel, external_id=customer_id, nickname="张女士")
    return Conversation.objects.create(customer=customer, channel=channel, last_message_at=timezone.now())


def _customer_writes(conversation: Conversation, *, ago: dt.timedelta = dt.timedelta(0), **fields) -> Message:
    message = Message.objects.create(
        conversation=conversation,
        channel=conversation.channel,
        direction=Message.Direction.IN,
        sender=Message.Sender.CUSTOMER,
        type=fields.pop("type", Message.Type.TEXT),
        content=fields.pop("content", "在吗"),
        status=Message.Status.PROCESSED,
        **fields,
    )
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - ago)
    return message


def _reply(conversation: Conversation, text: str = "您好，在的") -> Outbox:
    return services.reply_queue(conversation=conversation, text=text).outbox


def _send(outbox: Outbox) -> Outbox:
    services.outbox_send(outbox_id=outbox.id)
    outbox.refresh_from_db()
    return outbox


# --- statuses and reasons (no worker: the service is called directly) -------------------------------------------


@pytest.mark.django_db
def test_bridge_send_is_signed_idempotent_and_marked_sent(fake, redis_clean):
    channel = _channel("bridge", "shop", fake, rate_per_hour=0, min_gap_seconds=0)
    outbox = _send(_reply(_conversation(channel)))
    assert (outbox.status, outbox.attempts, outbox.reason) == (Outbox.Status.SENT, 1, "")
    assert outbox.message.status == Message.Status.SENT
    (request,) = fake.requests_to("/bridge/send")
    assert request.header("Idempotency-Key") == outbox.idempotency_key
    assert request.json["to"] == "wxid_customer_1"
    assert services.outbox_send(outbox_id=outbox.id) == Outbox.Status.SENT  # a duplicate task is a no-op
    assert len(fake.requests_to("/bridge/send")) == 1


@pytest.mark.django_db
def test_timeout_then_retry_reuses_the_key_and_the_bridge_drops_the_duplicate(fake, redis_clean):
    channel = _channel("bridge", "slow", fake, rate_per_hour=0, min_gap_seconds=0, timeout=0.3)
    fake.delay_next("/bridge/send", 1.0)  # the bridge delivers, then answers too late
    outbox = _send(_reply(_conversation(channel)))
    assert outbox.status == Outbox.Status.FAILED
    assert "[timeout]" in outbox.last_error
    assert outbox.next_attempt_at > timezone.now()
    assert services.outbox_send(outbox_id=outbox.id) == Outbox.Status.FAILED  # not due yet: left alone
    assert len(fake.requests_to("/bridge/send")) == 1
    Outbox.objects.filter(pk=outbox.pk).update(next_attempt_at=timezone.now())
    outbox = _send(outbox)
    assert (outbox.status, outbox.attempts) == (Outbox.Status.SENT, 2)
    keys = {r.header("Idempotency-Key") for r in fake.requests_to("/bridge/send")}
    assert keys == {outbox.idempotency_key}
    assert len(fake.bridge_deliveries) == 1 and fake.bridge_duplicates == 1


@pytest.mark.django_db
def test_permanent_error_blocks_and_too_many_failures_are_dead(fake, redis_clean):
    channel = _channel("bridge", "refuse", fake, rate_per_hour=0, min_gap_seconds=0)
    conversation = _conversation(channel)
    fake.fail_next("/bridge/send", status=403)
    blocked = _send(_reply(conversation))
    assert (blocked.status, blocked.reason) == (Outbox.Status.BLOCKED, "http_403")
    assert blocked.message.status == Message.Status.BLOCKED

    fake.fail_next("/bridge/send", status=503)
    dying = _reply(conversation, "第二条")
    Outbox.objects.filter(pk=dying.pk).update(attempts=services.MAX_SEND_ATTEMPTS - 1)
    dead = _send(dying)
    assert (dead.status, dead.reason, dead.attempts) == (Outbox.Status.DEAD, "max_attempts", 8)
    assert dead.next_attempt_at is None and "http_503" in dead.last_error
    assert dead.message.status == Message.Status.FAILED


@pytest.mark.django_db
def test_operator_retry_puts_a_blocked_row_back(fake, redis_clean):
    channel = _channel("bridge", "again", fake, rate_per_hour=0, min_gap_seconds=0)
    fake.fail_next("/bridge/send", status=400)
    outbox = _send(_reply(_conversation(channel)))
    assert outbox.status == Outbox.Status.BLOCKED
    outbound.outbox_retry(outbox_id=outbox.id)
    assert _send(outbox).status == Outbox.Status.SENT


@pytest.mark.django_db
def test_hourly_limit_holds_with_reason_and_time(fake, redis_clean):
    channel = _channel("bridge", "limited", fake, rate_per_hour=2, min_gap_seconds=0)
    conversation = _conversation(channel)
    rows = [_send(_reply(conversation, f"第{i}条")) for i in range(3)]
    assert [r.status for r in rows] == [Outbox.Status.SENT, Outbox.Status.SENT, Outbox.Status.HELD]
    held = rows[2]
    assert held.reason == REASON_RATE_LIMIT
    assert held.message.status == Message.Status.PENDING  # waits, never dropped
    wait = (held.next_attempt_at - timezone.now()).total_seconds()
    assert 3500 < wait <= 3600
    assert len(fake.bridge_deliveries) == 2
    assert held.id not in services.sweep_outbox()  # not due
    assert outbound.reason_label(held.reason) not in ("", REASON_RATE_LIMIT)  # operators read a sentence


@pytest.mark.django_db
def test_personal_account_gap_holds_briefly_then_sends(fake, redis_clean):
    channel = _channel("bridge", "gappy", fake, rate_per_hour=0, min_gap_seconds=0.4, max_gap_seconds=0.6)
    conversation = _conversation(channel)
    first = _send(_reply(conversation, "一"))
    second = _send(_reply(conversation, "二"))
    assert first.status == Outbox.Status.SENT
    assert (second.status, second.reason) == (Outbox.Status.HELD, REASON_MIN_GAP)
    wait = (second.next_attempt_at - timezone.now()).total_seconds()
    assert 0.2 < wait <= 0.6
    time.sleep(wait + 0.05)
    assert _send(second).status == Outbox.Status.SENT


@pytest.mark.django_db
def test_official_account_outside_the_48_hour_window_is_blocked(fake, redis_clean):
    channel = _channel("oa", "oa", fake)
    conversation = _conversation(channel, "oCustomer")
    _customer_writes(conversation, ago=dt.timedelta(hours=48, minutes=1))
    outbox = _send(_reply(conversation))
    assert (outbox.status, outbox.reason) == (Outbox.Status.BLOCKED, REASON_OUTSIDE_WINDOW)
    assert outbox.attempts == 0 and fake.requests == []  # never tried: it can never be sent
    assert services.outbox_send(outbox_id=outbox.id) == Outbox.Status.BLOCKED


@pytest.mark.django_db
def test_official_account_inside_the_window_sends_with_a_token_shared_in_redis(fake, redis_clean):
    channel = _channel("oa", "oa2", fake)
    conversation = _conversation(channel, "oCustomer")
    _customer_writes(conversation, ago=dt.timedelta(hours=47))
    assert _send(_reply(conversation)).status == Outbox.Status.SENT
    assert _send(_reply(conversation, "还有")).status == Outbox.Status.SENT
    assert fake.paths().count("/cgi-bin/token") == 1
    assert redis_clean.get("kefu:tok:oa2:wechat:oa:wx1234567890abcdef:access_token").startswith("oa-")
    assert redis_clean.ttl("kefu:tok:oa2:wechat:oa:wx1234567890abcdef:access_token") > 6000


@pytest.mark.django_db
def test_official_account_45015_blocks_with_the_window_reason(fake, redis_clean):
    channel = _channel("oa", "oa3", fake)
    conversation = _conversation(channel, "oCustomer")
    _customer_writes(conversation)
    fake.fail_next("/cgi-bin/message/custom/send", errcode=45015)
    outbox = _send(_reply(conversation))
    assert (outbox.status, outbox.reason) == (Outbox.Status.BLOCKED, REASON_OUTSIDE_WINDOW)
    assert "45015" in outbox.last_error


@pytest.mark.django_db
def test_official_account_event_opens_three_messages_within_a_minute(fake, redis_clean):
    channel = _channel("oa", "oa4", fake)
    conversation = _conversation(channel, "oCustomer")
    _customer_writes(conversation, type=Message.Type.EVENT, content="", meta={"event": "subscribe"})
    rows = [_send(_reply(conversation, f"欢迎{i}")) for i in range(4)]
    assert [r.status for r in rows[:3]] == [Outbox.Status.SENT] * 3
    assert (rows[3].status, rows[3].reason) == (Outbox.Status.BLOCKED, REASON_OUTSIDE_WINDOW)


@pytest.mark.django_db
def test_wecom_sixth_message_is_held_until_the_customer_writes_again(fake, redis_clean):
    channel = _channel("kf", "kf", fake)
    conversation = _conversation(channel, "wmCustomer")
    first = _customer_writes(conversation, ago=dt.timedelta(hours=1))
    rows = [_send(_reply(conversation, f"第{i}条")) for i in range(6)]
    assert [r.status for r in rows[:5]] == [Outbox.Status.SENT] * 5
    sixth = rows[5]
    assert (sixth.status, sixth.reason) == (Outbox.Status.HELD, REASON_WECOM_QUOTA)
    first.refresh_from_db()
    assert abs((sixth.next_attempt_at - (first.created_at + dt.timedelta(hours=48))).total_seconds()) < 0.01
    assert sixth.id not in services.sweep_outbox()  # the customer has not written yet
    assert _send(sixth).status == Outbox.Status.HELD  # re-checked: still over the quota
    assert len(fake.requests_to("/cgi-bin/kf/send_msg")) == 5

    _customer_writes(conversation, content="还有个问题")
    assert sixth.id in services.sweep_outbox()  # released by the customer's new message
    assert _send(sixth).status == Outbox.Status.SENT
    assert outbound.outbox_release_for_customer(customer_id=conversation.customer_id) == []


# --- dead senders, concurrent duplicates, tokens ------------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.mark.django_db
def test_a_sending_row_is_taken_over_only_when_its_sender_died(fake, redis_clean):
    import socket

    channel = _channel("bridge", "takeover", fake, rate_per_hour=0, min_gap_seconds=0)
    outbox = _reply(_conversation(channel))
    Outbox.objects.filter(pk=outbox.pk).update(status=Outbox.Status.SENDING, attempts=1, updated_at=timezone.now())
    claim_key = f"kefu:outbox:claim:{outbox.id}"
    redis_clean.set(claim_key, outbound._claim_owner())  # alive: this very process
    assert services.outbox_send(outbox_id=outbox.id) == "in_flight"
    assert outbox.id not in services.sweep_outbox()
    redis_clean.set(claim_key, f"{socket.gethostname()}:{_dead_pid()}:gone")  # killed mid-send
    assert outbox.id in services.sweep_outbox()
    assert _send(outbox).status == Outbox.Status.SENT
    assert outbox.attempts == 2
    assert redis_clean.get(claim_key) == outbound._claim_owner()  # the new sender claimed it


@pytest.mark.django_db
def test_a_sending_row_without_owner_is_taken_over_after_the_stuck_timeout(fake, redis_clean, settings):
    settings.KEFU_OUTBOX_STUCK_SECONDS = 60
    channel = _channel("bridge", "stuck", fake, rate_per_hour=0, min_gap_seconds=0)
    outbox = _reply(_conversation(channel))
    Outbox.objects.filter(pk=outbox.pk).update(status=Outbox.Status.SENDING, updated_at=timezone.now())
    assert services.outbox_send(outbox_id=outbox.id) == "in_flight"
    Outbox.objects.filter(pk=outbox.pk).update(updated_at=timezone.now() - dt.timedelta(seconds=61))
    assert outbox.id in services.sweep_outbox()
    assert _send(outbox).status == Outbox.Status.SENT


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_tasks_send_once(fake, redis_clean):
    channel = _channel("bridge", "dups", fake, rate_per_hour=0, min_gap_seconds=0)
    outbox = _reply(_conversation(channel))
    redis_clean.flushdb()  # drop the queued task: only our threads send
    fake.delay_next("/bridge/send", 0.5)
    results: list[str] = []
    start = threading.Barrier(6)

    def task() -> None:
        from django.db import connection

        start.wait()
        try:
            results.append(services.outbox_send(outbox_id=outbox.id))
        finally:
            connection.close()

    threads = [threading.Thread(target=task) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(Outbox.Status.SENT) >= 1
    assert set(results) <= {Outbox.Status.SENT, "in_flight", "locked_or_missing"}
    assert len(fake.requests_to("/bridge/send")) == 1


def test_token_refresh_happens_once_for_many_workers(fake, redis_clean):
    results: list[str] = []
    start = threading.Barrier(6)

    def worker() -> None:
        client = WeChatApiClient(
            api_base=fake.base_url,
            token_path="/cgi-bin/token",
            token_params={"grant_type": "client_credential", "appid": "wxA", "secret": "s"},
            token_key="wechat:oa:wxA:access_token",
            token_store=RedisTokenStore(channel="many"),
            token_errcodes={40001, 42001},
        )
        start.wait()
        results.append(client.call("/cgi-bin/message/custom/send", {"touser": "o1", "msgtype": "text"})["errmsg"])

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["ok"] * 6
    assert fake.paths().count("/cgi-bin/token") == 1

    fake.expire_tokens()  # every worker's cached token now answers 42001: one refresh again
    results.clear()
    start.reset()
    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["ok"] * 6
    assert fake.paths().count("/cgi-bin/token") == 2


def test_redis_token_store_contract(redis_clean):
    store = RedisTokenStore(channel="c1", lock_wait=0.2)
    assert store.get("k") is None
    store.set("k", "v", 30)
    assert store.get("k") == "v"
    assert 0 < redis_clean.ttl("kefu:tok:c1:k") <= 30
    with store.lock("k"):
        other = RedisTokenStore(channel="c1", lock_wait=0.2)
        from bots.channels.base import ApiError

        with pytest.raises(ApiError) as busy, other.lock("k"):
            pass
        assert busy.value.retryable
    with RedisTokenStore(channel="c1").lock("k"):  # released
        pass


# --- with a real worker: countdown re-queues ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_failed_sends_are_retried_with_backoff_until_sent(celery_worker, fake, settings):
    settings.KEFU_OUTBOX_BACKOFF_BASE_SECONDS = 0.2
    channel = _channel("bridge", "flaky", fake, rate_per_hour=0, min_gap_seconds=0)
    fake.fail_next("/bridge/send", status=502, times=2)
    outbox = _reply(_conversation(channel))
    wait_for(lambda: Outbox.objects.get(pk=outbox.pk).status == Outbox.Status.SENT, timeout=15)
    outbox.refresh_from_db()
    assert outbox.attempts == 3
    assert len(fake.requests_to("/bridge/send")) == 3 and len(fake.bridge_deliveries) == 1


@pytest.mark.django_db(transaction=True)
def test_gap_held_messages_drain_one_slot_each(celery_worker, fake):
    channel = _channel("bridge", "drain", fake, rate_per_hour=0, min_gap_seconds=0.3, max_gap_seconds=0.4)
    conversation = _conversation(channel)
    rows = [_reply(conversation, f"第{i}条") for i in range(4)]
    wait_for(lambda: Outbox.objects.filter(pk__in=[r.pk for r in rows], status=Outbox.Status.SENT).count() == 4)
    arrivals = sorted(r.received_at for r in fake.requests_to("/bridge/send"))
    assert len(arrivals) == 4
    # the limiter spaces the claims 0.3-0.4 s apart; HTTP latency under a loaded CI machine can eat part of that
    assert all(b - a >= 0.2 for a, b in zip(arrivals, arrivals[1:], strict=False))
    assert Outbox.objects.filter(pk__in=[r.pk for r in rows]).values_list("attempts", flat=True).distinct().get() == 1


@pytest.mark.django_db
def test_sweeper_requeues_a_lost_task_but_does_not_copy_queued_ones(fake, redis_clean):
    channel = _channel("bridge", "sweep", fake, rate_per_hour=0, min_gap_seconds=0)
    outbox = _reply(_conversation(channel))
    Outbox.objects.filter(pk=outbox.pk).update(created_at=timezone.now() - dt.timedelta(minutes=2))
    outbound._queue_send(outbox.id)  # its task is in the broker (a long queue): the sweeper leaves it alone
    assert outbox.id not in services.sweep_outbox()
    redis_clean.flushdb()  # the broker lost it (and the mark with it)
    assert services.sweep_outbox() == [outbox.id]
    assert redis_clean.llen("kefu:celery:outbound") == 1
    assert services.sweep_outbox() == []  # queued again: marked
