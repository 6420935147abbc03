"""CELERY_BROKER_URL may be amqp:// (RabbitMQ) instead of Redis: the same tasks run over it."""

import os
import uuid

import pytest
from celery import Celery, _state
from celery.app import trace
from celery.contrib.testing.worker import start_worker

from bots import services
from bots.channels.base import InboundMessage
from bots.models import Message
from config.celery import app as kefu_app
from tests.conftest import wait_for

AMQP_URL = os.environ.get("KEFU_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


@pytest.mark.django_db(transaction=True)
def test_message_is_processed_over_a_rabbitmq_broker(redis_clean, web_channel, greeting_rule):
    app = Celery("kefu-amqp")
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.broker_url = AMQP_URL
    app.conf.broker_transport_options = {}
    app.conf.task_default_queue = f"kefu-test-{uuid.uuid4().hex[:8]}"
    queue = f"kefu-test-inbound-{uuid.uuid4().hex[:8]}"
    app.autodiscover_tasks(["bots"], force=True)
    message, _ = services.message_receive(
        channel=web_channel, inbound=InboundMessage(external_id="amqp-1", sender_id="w", type="text", text="你好")
    )
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=3)  # fails loudly when RabbitMQ is not running
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, queues=[queue], shutdown_timeout=20):
            app.send_task("bots.tasks.process_message", args=[message.id], queue=queue)
            wait_for(lambda: Message.objects.get(pk=message.id).status == Message.Status.PROCESSED)
    finally:  # the worker made this app the current one: later tests' task.delay() would publish to RabbitMQ
        trace.reset_worker_optimizations()
        _state.set_default_app(kefu_app)
        kefu_app.set_current()
    reply = Message.objects.get(reply_to=message)
    assert reply.content.startswith("您好")
