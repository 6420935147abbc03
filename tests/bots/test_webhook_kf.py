"""微信客服 webhook end to end: callback → Celery task → sync_msg pages → pipeline → send_msg, on the real
PostgreSQL, Redis and Celery worker, against the HTTP fake of the WeCom API."""

from __future__ import annotations

import copy
import json
import time
from urllib.parse import urlencode

import pytest

from bots.models import Channel, ChannelCursor, Message, Outbox
from bots.services.channels import channel_upsert
from tests.conftest import wait_for
from tests.fakes.wechat_api import FakeWeChat, encrypted_push, fixture_bytes, fixture_json, wechat_encrypt, wechat_sign

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "kefuKfToken2026"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
CORP_ID = "ww3f8a2c91d0b7e456"
OPEN_KFID = "wkq3ZxEQAAd8Rk2mYpV5tLs9HnC1bW4x"
CUSTOMER = "wmq3ZxEQAAk7GhT2pLw9RcV4nB8sD1fE"
URL = "/wechat/kf/kf/"
SYNC, SEND = "/cgi-bin/kf/sync_msg", "/cgi-bin/kf/send_msg"


@pytest.fixture
def fake():
    with FakeWeChat.start() as server:
        yield server


@pytest.fixture
def kf_channel(fake) -> Channel:
    values = {
        "token": TOKEN,
        "aes_key": AES_KEY,
        "corp_id": CORP_ID,
        "secret": "kf-secret-0123456789abcdef",
        "api_base": fake.base_url,
    }
    return channel_upsert(kind="kf", slug="kf", values=values).channel


def callback(client, plain: bytes | None = None, *, token: str = TOKEN):
    plain = plain or fixture_bytes("wecom_kf/callback_event.xml")
    query, body = encrypted_push(
        plain,
        token=token,
        encoding_aes_key=AES_KEY,
        receive_id=CORP_ID,
        to_user=CORP_ID,
        timestamp=str(int(time.time())),
        nonce="1372623149",
    )
    return client.post(f"{URL}?{urlencode(query)}", data=body, content_type="text/xml")


def queued_pulls(redis, channel: Channel) -> list[str]:
    """``kf_sync`` tasks for ``channel`` waiting in the real broker's inbound queue (other tests' leftovers,
    e.g. a retry restored after a worker stopped, name other channel ids)."""
    found = []
    for raw in redis.lrange("kefu:celery:inbound", 0, -1):
        headers = json.loads(raw).get("headers") or {}
        if headers.get("task") == "bots.tasks.kf_sync" and headers.get("argsrepr", "").startswith(f"({channel.id},"):
            found.append(headers["argsrepr"])
    return found


def pages() -> list[list[dict]]:
    event, text, image, servicer = copy.deepcopy(fixture_json("wecom_kf/sync_msg_response.json")["msg_list"])
    return [[event, text], [image, servicer]]


def test_get_verification_returns_the_decrypted_echostr(client, kf_channel):
    echostr = wechat_encrypt("8735211954023", AES_KEY, CORP_ID)
    timestamp, nonce = str(int(time.time())), "5"
    query = {"msg_signature": wechat_sign(TOKEN, timestamp, nonce, echostr), "timestamp": timestamp, "nonce": nonce}
    response = client.get(URL, {**query, "echostr": echostr})
    assert response.status_code == 200
    assert response.content == b"8735211954023"
    response = client.get(URL, {**query, "msg_signature": "0" * 40, "echostr": echostr})
    assert response.status_code == 403


def test_callback_pulls_every_page_stores_once_and_answers_through_send_msg(client, fake, kf_channel, celery_worker):
    fake.set_kf_pages(pages())
    started = time.monotonic()
    response = callback(client)
    assert time.monotonic() - started < 2.5  # acked well inside WeChat's 5 s, never after the NLP
    assert (response.status_code, response.content) == (200, b"")

    wait_for(lambda: Message.objects.filter(external_id__isnull=False).count() == 4)
    wait_for(lambda: ChannelCursor.objects.filter(channel=kf_channel, key=OPEN_KFID, cursor="c2").exists())
    # two sends: the event and the servicer's message get none
    wait_for(lambda: len(fake.requests_to(SEND)) == 2)
    sends = fake.requests_to(SEND)
    assert {s.json["open_kfid"] for s in sends} == {OPEN_KFID}
    assert {s.json["touser"] for s in sends} == {CUSTOMER}
    # the text gets the bot's answer; the image (a second message the bot cannot answer) hands the customer
    # to a person, and that system message also reaches the right WeCom account
    replies = Message.objects.filter(direction="out").exclude(sender="agent")
    assert sorted(r.sender for r in replies) == ["bot", "system"]
    assert Message.objects.get(sender="bot").reply_to.type == "text"
    assert all(r.meta["open_kfid"] == OPEN_KFID for r in replies)
    agent = Message.objects.get(sender="agent")
    assert (agent.direction, agent.status) == ("out", Message.Status.SENT)
    assert not agent.replies.exists()
    event = Message.objects.get(type="event")
    wait_for(lambda: Message.objects.get(pk=event.pk).status == Message.Status.PROCESSED)
    assert not event.replies.exists()

    # a second callback with the same messages (a burst, a retry): nothing stored twice, no second reply
    response = callback(client)
    assert response.status_code == 200
    wait_for(lambda: len(fake.requests_to(SYNC)) == 3)
    time.sleep(1.0)
    assert [s.json.get("cursor") for s in fake.requests_to(SYNC)] == [None, "c1", "c2"]
    assert Message.objects.filter(external_id__isnull=False).count() == 4
    assert Message.objects.filter(direction="out").exclude(sender="agent").count() == 2
    assert len(fake.requests_to(SEND)) == 2
    assert ChannelCursor.objects.get(channel=kf_channel, key=OPEN_KFID).cursor == "c2"
    assert Outbox.objects.filter(status=Outbox.Status.SENT).count() == 2


def test_a_callback_with_a_bad_signature_is_403_and_queues_nothing(client, fake, kf_channel, redis_clean):
    response = callback(client, token="not-the-token")
    assert response.status_code == 403
    assert queued_pulls(redis_clean, kf_channel) == []
    assert not Message.objects.exists()


def test_a_malformed_callback_is_400(client, kf_channel, redis_clean):
    timestamp, nonce = str(int(time.time())), "7"
    query = {"msg_signature": wechat_sign(TOKEN, timestamp, nonce, "x"), "timestamp": timestamp, "nonce": nonce}
    response = client.post(f"{URL}?{urlencode(query)}", data=b"<xml><Encrypt>", content_type="text/xml")
    assert response.status_code == 400
    assert "error" in response.json()
    assert queued_pulls(redis_clean, kf_channel) == []


def test_other_events_are_acknowledged_without_a_pull(client, kf_channel, redis_clean):
    plain = (
        f"<xml><ToUserName>{CORP_ID}</ToUserName><CreateTime>{int(time.time())}</CreateTime>"
        "<MsgType>event</MsgType><Event>change_external_contact</Event></xml>"
    ).encode()
    response = callback(client, plain)
    assert (response.status_code, response.content) == (200, b"")
    assert queued_pulls(redis_clean, kf_channel) == []


def test_the_callback_queues_a_task_on_the_inbound_queue(client, kf_channel, redis_clean):
    response = callback(client)
    assert response.status_code == 200
    pulls = queued_pulls(redis_clean, kf_channel)  # no worker: the pull waits in the broker
    assert pulls == [f"({kf_channel.id}, 'ENCq7Hs2KpV9xLmT3bR8wN5cZ1dF6gJ4yA0eU2iO7kQ9sXvM', '{OPEN_KFID}')"]
