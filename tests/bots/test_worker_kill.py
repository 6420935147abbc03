"""``kill -9`` a real Celery worker (``celery -A config worker``, prefork pool, its own process group) in the
middle of a task, start a new one, and check that nothing is lost and nothing is delivered twice.

The worker subprocesses use this test run's PostgreSQL database and Redis index (``DATABASE_URL``,
``TEST_REDIS_URL``). Recovery is what production does: the sweepers (beat runs them every 30 s; called directly
here) find the row left 'sending' by a process that no longer exists, or the message left unprocessed, and queue
them again; the idempotency key makes the bridge drop the repeated send.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, connections, transaction

from bots import services
from bots.channels.base import InboundMessage
from bots.models import Channel, Conversation, Customer, Message, Outbox
from tests.conftest import wait_for
from tests.fakes.wechat_api import FakeWeChat

pytestmark = pytest.mark.django_db(transaction=True)

BASE_DIR = Path(__file__).resolve().parents[2]
SECRET = "kill-test-secret"


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Worker:
    """``celery -A config worker`` in its own session (process group), killed with SIGKILL on demand."""

    def __init__(self, name: str) -> None:
        self.log = tempfile.NamedTemporaryFile(prefix=f"kefu-{name}-", suffix=".log", delete=False)  # noqa: SIM115
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": _database_url(),
            "TEST_REDIS_URL": settings.REDIS_URL,
            "REDIS_URL": settings.REDIS_URL,
            "CELERY_BROKER_URL": settings.REDIS_URL,
            "KEFU_OUTBOX_STUCK_SECONDS": str(settings.KEFU_OUTBOX_STUCK_SECONDS),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "prefork", "-c", "1",
             "-Q", "inbound,outbound,default", "-n", f"{name}-{uuid.uuid4().hex[:6]}@%h",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info"],
            cwd=BASE_DIR, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def kill9(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # the main process and its pool children at once
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill9()

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-4000:]


@pytest.fixture
def workers():
    started: list[Worker] = []

    def start(name: str) -> Worker:
        worker = Worker(name)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
        Path(worker.log.name).unlink(missing_ok=True)


@pytest.fixture
def fake():
    with FakeWeChat.start() as server:
        server.bridge_secret = SECRET
        yield server


@pytest.fixture
def bridge(fake):
    return Channel.objects.create(
        kind=Channel.Kind.BRIDGE,
        slug="killtest",
        name="kill test",
        settings={"send_url": fake.base_url + "/bridge/send", "rate_per_hour": 0, "min_gap_seconds": 0},
        secrets=json.dumps({"secret": SECRET}),
    )


def test_worker_killed_while_sending_delivers_exactly_once(redis_clean, workers, fake, bridge):
    customer = Customer.objects.create(channel=bridge, external_id="wxid_kill_1")
    conversation = Conversation.objects.create(customer=customer, channel=bridge)
    fake.delay_next("/bridge/send", 30.0)  # the bridge delivers, then holds its answer: the send is in flight
    first = workers("kill-a")
    outbox = services.reply_queue(conversation=conversation, text="您的包裹已发货").outbox

    try:
        wait_for(lambda: len(fake.bridge_deliveries) == 1, timeout=30)
    except BaseException:
        print(first.output())
        raise
    assert Outbox.objects.get(pk=outbox.pk).status == Outbox.Status.SENDING
    first.kill9()

    second = workers("kill-b")
    # the beat sweeper (called here) sees that the claiming process is gone and queues the row again at once
    wait_for(lambda: services.sweep_outbox() == [outbox.id], timeout=10)
    try:
        wait_for(lambda: Outbox.objects.get(pk=outbox.pk).status == Outbox.Status.SENT, timeout=30)
    except BaseException:
        print(second.output())
        raise
    outbox.refresh_from_db()
    assert outbox.attempts == 2
    assert len(fake.bridge_deliveries) == 1  # delivered once...
    assert fake.bridge_duplicates == 1  # ...the retry carried the same idempotency key and was dropped
    assert {r.header("Idempotency-Key") for r in fake.requests_to("/bridge/send")} == {outbox.idempotency_key}
    assert Message.objects.get(pk=outbox.message_id).status == Message.Status.SENT


def _waiting_on_a_lock() -> bool:
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


def test_worker_killed_while_processing_an_inbound_message_answers_once(
    redis_clean, workers, fake, bridge, greeting_rule
):
    message, created = services.message_receive(
        channel=bridge,
        inbound=InboundMessage(external_id="kill-in-1", sender_id="wxid_kill_2", type="text", text="你好"),
    )
    assert created
    locked, release = threading.Event(), threading.Event()

    def hold_the_row() -> None:  # keeps the worker's conversation_handle waiting inside its transaction
        try:
            with transaction.atomic():
                Message.objects.select_for_update().get(pk=message.pk)
                locked.set()
                release.wait(60)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_row)
    holder.start()
    try:
        assert locked.wait(10)
        first = workers("kill-c")
        try:
            wait_for(_waiting_on_a_lock, timeout=30)  # the worker is mid-task
        except BaseException:
            print(first.output())
            raise
        first.kill9()
    finally:
        release.set()
        holder.join()

    message.refresh_from_db()
    assert message.status == Message.Status.RECEIVED  # the killed transaction left nothing behind
    workers("kill-d")
    assert services.sweep_unprocessed(older_than_seconds=0) == [message.id]

    def answered():
        reply = Message.objects.filter(reply_to=message, direction=Message.Direction.OUT).first()
        return reply if reply and reply.status == Message.Status.SENT else None

    reply = wait_for(answered, timeout=30)
    assert reply.content.startswith("您好")
    assert Message.objects.filter(conversation=message.conversation, direction=Message.Direction.OUT).count() == 1
    assert len(fake.bridge_deliveries) == 1 and fake.bridge_duplicates == 0
    assert fake.bridge_deliveries[0]["to"] == "wxid_kill_2"
