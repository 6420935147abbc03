"""core.broker: redis:// brokers use one Redis client per kombu channel (kombu built one per command)."""

import pytest
import redis

from config.celery import app
from core import broker
from tests.conftest import running_worker, wait_for


def test_the_app_connects_through_the_kefu_transport():
    with app.connection_for_write() as conn:
        assert isinstance(conn.transport, broker.Transport)
        assert conn.default_channel.__class__ is broker.Channel


def test_publishing_reuses_one_client(redis_clean, monkeypatch):
    created = []
    original = redis.Redis.__init__

    def counting_init(self, *args, **kwargs):
        created.append(1)
        original(self, *args, **kwargs)

    with app.connection_for_write() as conn:
        producer = conn.Producer()
        producer.publish({"n": 0}, routing_key="kefu-broker-test", declare=[], serializer="json")
        monkeypatch.setattr(redis.Redis, "__init__", counting_init)
        for n in range(1, 6):
            producer.publish({"n": n}, routing_key="kefu-broker-test", serializer="json")
    assert created == []  # kombu's own channel made a new client for each of these five
    assert redis_clean.llen("kefu:celery:kefu-broker-test") == 6  # all delivered to the real Redis list


@pytest.mark.django_db(transaction=True)
def test_tasks_still_run_and_are_acked(redis_clean, web_channel, greeting_rule):
    from bots import services
    from bots.channels.base import InboundMessage
    from bots.models import Message

    message, _ = services.message_receive(
        channel=web_channel, inbound=InboundMessage(external_id="broker-1", sender_id="w", type="text", text="你好")
    )
    with running_worker():
        wait_for(lambda: Message.objects.get(pk=message.id).status == Message.Status.PROCESSED)
        wait_for(lambda: not redis_clean.hlen("kefu:celery:unacked"))  # acked through the cached client
    assert Message.objects.filter(reply_to=message).exists()
