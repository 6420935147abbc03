"""公众号 webhook end to end: real PostgreSQL, Redis, Celery worker and the HTTP fake of the WeChat API."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import pytest
from defusedxml import ElementTree as SafeET

from bots.models import Channel, Message, Outbox
from bots.services.channels import channel_upsert
from tests.conftest import running_worker, wait_for
from tests.fakes.wechat_api import FakeWeChat, encrypted_push, fixture_bytes, wechat_decrypt, wechat_sign

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "kefuOaToken2026"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APP_ID = "wx5823bf96d3bd56c7"
OPENID = "oXk9J5xQ2bT7vLmN4pR8sW1yZ3aC"
ACCOUNT = "gh_7a3c5e9b1d24"
SEND_PATH = "/cgi-bin/message/custom/send"
URL = "/wechat/oa/shop/"


@pytest.fixture
def fake():
    with FakeWeChat.start() as server:
        yield server


def make_channel(fake: FakeWeChat | None = None, *, budget: float = 4.0, slug: str = "shop") -> Channel:
    values = {
        "token": TOKEN,
        "aes_key": AES_KEY,
        "app_id": APP_ID,
        "app_secret": "oa-app-secret-0123456789",
        "passive_budget": budget,
        "api_base": fake.base_url if fake else None,
    }
    return channel_upsert(kind="oa", slug=slug, values=values).channel


def signed_query(**extra) -> dict[str, str]:
    timestamp, nonce = str(int(time.time())), "1320152735"
    return {"signature": wechat_sign(TOKEN, timestamp, nonce), "timestamp": timestamp, "nonce": nonce, **extra}


def text_push(content: str = "你好，什么时候发货？", msg_id: str = "24998512730461985") -> bytes:
    return (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{OPENID}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    ).encode()


def post(client, body: bytes, query: dict[str, str] | None = None, url: str = URL):
    query = signed_query() if query is None else query
    return client.post(f"{url}?{urlencode(query)}", data=body, content_type="text/xml")


def safe_post(client, plain: bytes, url: str = URL):
    timestamp, nonce = str(int(time.time())), "462130975"
    query, body = encrypted_push(
        plain,
        token=TOKEN,
        encoding_aes_key=AES_KEY,
        receive_id=APP_ID,
        to_user=ACCOUNT,
        timestamp=timestamp,
        nonce=nonce,
    )
    query = {**query, "signature": wechat_sign(TOKEN, timestamp, nonce), "encrypt_type": "aes", "openid": OPENID}
    return client.post(f"{url}?{urlencode(query)}", data=body, content_type="text/xml")


def reply_fields(response) -> dict[str, str]:
    root = SafeET.fromstring(response.content)
    return {child.tag: child.text or "" for child in root}


@pytest.fixture
def warm_decide(db):
    """Load the decision code (and any model it lazily loads) before timing a passive reply."""
    from bots.services import inbound

    inbound.knowledge.decide(text="你好", context=inbound.DecisionContext())


# --- URL verification -----------------------------------------------------------------------------------------


def test_get_verification_echoes_echostr(client):
    make_channel()
    response = client.get(URL, signed_query(echostr="5927782489442352469"))
    assert response.status_code == 200
    assert response.content == b"5927782489442352469"


def test_get_verification_with_a_bad_signature_is_403(client):
    make_channel()
    query = {**signed_query(echostr="123"), "signature": "0" * 40}
    response = client.get(URL, query)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "bad_signature"


def test_unknown_disabled_or_wrong_kind_slug_is_404(client):
    make_channel()
    channel_upsert(kind="bridge", slug="other", values={"secret": "s" * 32})
    assert client.get("/wechat/oa/nope/", signed_query(echostr="1")).status_code == 404
    assert client.get("/wechat/oa/other/", signed_query(echostr="1")).status_code == 404  # a bridge, not an OA
    Channel.objects.filter(slug="shop").update(enabled=False)
    response = post(client, text_push())
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_channel"
    assert not Message.objects.exists()


# --- passive replies ------------------------------------------------------------------------------------------


def test_plain_text_is_answered_passively_and_never_through_the_api(client, fake, celery_worker, warm_decide):
    make_channel(fake, budget=4.0)
    started = time.monotonic()
    response = post(client, text_push())
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.content
    assert elapsed < 4.0
    fields = reply_fields(response)
    inbound = Message.objects.get(direction="in")
    reply = Message.objects.get(direction="out")
    assert inbound.external_id == "24998512730461985" and inbound.type == "text"
    assert fields["ToUserName"] == OPENID and fields["FromUserName"] == ACCOUNT  # swapped in a reply
    assert fields["MsgType"] == "text" and fields["Content"] == reply.content
    outbox = Outbox.objects.get(message=reply)
    assert (outbox.status, outbox.reason) == (Outbox.Status.SENT, "passive")
    assert reply.meta.get("account") == ACCOUNT
    time.sleep(4.0 + 1.0 + 0.7)  # past the window and the send task's countdown: it must skip the row
    assert fake.requests_to(SEND_PATH) == []
    reply.refresh_from_db()
    assert reply.status == Message.Status.SENT


def test_safe_mode_message_gets_an_encrypted_passive_reply(client, fake, celery_worker, warm_decide):
    make_channel(fake, budget=4.0)
    response = safe_post(client, text_push(msg_id="24998512730461986"))
    assert response.status_code == 200, response.content
    envelope = reply_fields(response)
    assert set(envelope) >= {"Encrypt", "MsgSignature", "TimeStamp", "Nonce"}
    assert envelope["MsgSignature"] == wechat_sign(TOKEN, envelope["TimeStamp"], envelope["Nonce"], envelope["Encrypt"])
    plain, receive_id = wechat_decrypt(envelope["Encrypt"], AES_KEY)
    assert receive_id == APP_ID
    inner = {child.tag: child.text or "" for child in SafeET.fromstring(plain)}
    assert inner["ToUserName"] == OPENID
    assert inner["Content"] == Message.objects.get(direction="out").content
    assert Message.objects.get(direction="in").meta["encrypted"] is True
    assert fake.requests_to(SEND_PATH) == []


def test_without_a_worker_success_after_the_budget_then_the_api_sends_exactly_once(client, fake, redis_clean):
    make_channel(fake, budget=0.6)
    started = time.monotonic()
    response = post(client, text_push(msg_id="24998512730461987"))
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.content == b"success"
    assert 0.5 <= elapsed < 3.0
    assert Message.objects.get(direction="in").status == Message.Status.RECEIVED
    with running_worker():
        wait_for(lambda: fake.requests_to(SEND_PATH), timeout=20)
        wait_for(lambda: Outbox.objects.filter(status=Outbox.Status.SENT).exists())
        time.sleep(1.5)
    sends = fake.requests_to(SEND_PATH)
    assert len(sends) == 1
    assert sends[0].json["touser"] == OPENID
    assert sends[0].json["text"]["content"] == Message.objects.get(direction="out").content
    assert Outbox.objects.get().reason != "passive"


def test_a_retry_of_the_same_msgid_is_stored_once_and_answered_once(client, fake, celery_worker, warm_decide):
    make_channel(fake, budget=4.0)
    body = text_push(msg_id="24998512730461988")
    first = post(client, body)
    second = post(client, body)  # WeChat retries when our first answer did not reach it
    assert first.status_code == second.status_code == 200
    assert Message.objects.filter(direction="in").count() == 1
    assert Message.objects.filter(direction="out").count() == 1
    assert reply_fields(first)["Content"] == reply_fields(second)["Content"]
    time.sleep(1.0)
    assert Message.objects.filter(direction="out").count() == 1
    assert fake.requests_to(SEND_PATH) == []


def test_a_retry_arriving_after_the_budget_returns_the_ready_reply_passively(client, fake, redis_clean):
    make_channel(fake, budget=0.3)
    body = text_push(msg_id="24998512730461989")
    assert post(client, body).content == b"success"  # no worker yet: the bot has not decided
    with running_worker(queues=("inbound",)):  # decide, but nothing sends yet
        wait_for(lambda: Message.objects.filter(direction="out").exists())
    reply = Message.objects.get(direction="out")
    assert Outbox.objects.get(message=reply).status == Outbox.Status.PENDING
    retry = post(client, body)  # WeChat's retry: the reply is ready and unclaimed
    assert reply_fields(retry)["Content"] == reply.content
    outbox = Outbox.objects.get(message=reply)
    assert (outbox.status, outbox.reason) == (Outbox.Status.SENT, "passive")
    with running_worker():  # the queued send task now finds the row sent and skips it
        time.sleep(2.0)
    assert fake.requests_to(SEND_PATH) == []
    assert Message.objects.filter(direction="in").count() == 1
    assert Message.objects.filter(direction="out").count() == 1


# --- every message type ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "kind"),
    [
        ("oa/text.xml", "text"),
        ("oa/image.xml", "image"),
        ("oa/voice_with_recognition.xml", "voice"),
        ("oa/video.xml", "video"),
        ("oa/location.xml", "location"),
        ("oa/link.xml", "link"),
        ("oa/event_subscribe.xml", "event"),
        ("oa/event_unsubscribe.xml", "event"),
        ("oa/event_click.xml", "event"),
    ],
)
def test_every_fixture_is_stored_with_its_type(client, redis_clean, fixture, kind):
    make_channel(budget=0)
    response = post(client, fixture_bytes(fixture))
    assert response.status_code == 200
    assert response.content == b"success"
    message = Message.objects.get()
    assert (message.direction, message.type, message.status) == ("in", kind, Message.Status.RECEIVED)
    assert message.conversation.customer.external_id == OPENID


def test_an_unknown_message_type_is_stored_as_unsupported(client, redis_clean):
    make_channel(budget=0)
    body = (
        f"<xml><ToUserName>{ACCOUNT}</ToUserName><FromUserName>{OPENID}</FromUserName><CreateTime>1749521721"
        "</CreateTime><MsgType>miniprogrampage</MsgType><Title>小程序</Title><MsgId>24998512730461990</MsgId></xml>"
    ).encode()
    response = post(client, body)
    assert response.status_code == 200
    assert Message.objects.get().type == "unsupported"


# --- hostile and broken input ---------------------------------------------------------------------------------

XXE = b"""<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><ToUserName>gh_7a3c5e9b1d24</ToUserName><FromUserName>oXk9J5xQ2bT7vLmN4pR8sW1yZ3aC</FromUserName>
<CreateTime>1749521721</CreateTime><MsgType>text</MsgType><Content>&xxe;</Content><MsgId>1</MsgId></xml>"""
_LEVELS = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
LAUGHS = (
    f'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY lol0 "lol">{_LEVELS}]>'
    "<xml><ToUserName>gh_7a3c5e9b1d24</ToUserName><FromUserName>oXk9J5xQ2bT7vLmN4pR8sW1yZ3aC</FromUserName>"
    "<CreateTime>1749521721</CreateTime><MsgType>text</MsgType><Content>&lol9;</Content><MsgId>2</MsgId></xml>"
).encode()


@pytest.mark.parametrize("body", [XXE, LAUGHS], ids=["xxe", "billion-laughs"])
def test_xml_with_entities_is_refused_and_nothing_is_stored(client, redis_clean, body):
    make_channel(budget=0)
    response = post(client, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "xml_forbidden"
    assert not Message.objects.exists()


def test_entities_inside_a_safe_mode_envelope_are_refused_too(client, redis_clean):
    make_channel(budget=0)
    response = safe_post(client, XXE)
    assert response.status_code == 400
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    "body", [b"<xml><MsgType>text", b"not xml at all", b"", b"<notxml/>", b"<xml><MsgType>text</MsgType></xml>"]
)
def test_malformed_xml_is_400_json_without_a_traceback(client, redis_clean, body):
    make_channel(budget=0)
    response = post(client, body)
    assert response.status_code == 400
    payload = response.json()
    assert set(payload["error"]) == {"code", "message"}
    assert "Traceback" not in response.content.decode() and 'File "' not in response.content.decode()
    assert not Message.objects.exists()


def test_a_body_over_one_mib_is_413(client, redis_clean):
    make_channel(budget=0)
    big = text_push(content="长" * (400 * 1024))
    assert len(big) > 1024 * 1024
    response = post(client, big)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    assert not Message.objects.exists()


def test_a_content_length_over_one_mib_is_413_before_reading(rf, redis_clean):
    from bots.webhooks import oa_webhook

    make_channel(budget=0)
    request = rf.post(f"{URL}?{urlencode(signed_query())}", data=text_push(), content_type="text/xml")
    request.META["CONTENT_LENGTH"] = str(5 * 1024 * 1024)
    response = oa_webhook(request, slug="shop")
    assert response.status_code == 413
    assert not Message.objects.exists()


def test_a_bad_signature_is_403_and_nothing_is_stored(client, redis_clean):
    make_channel(budget=0)
    response = post(client, text_push(), query={**signed_query(), "signature": "f" * 40})
    assert response.status_code == 403
    assert json.loads(response.content)["error"]["code"] == "bad_signature"
    response = post(client, text_push(), query={})
    assert response.status_code == 403
    assert not Message.objects.exists()


def test_a_bad_msg_signature_in_safe_mode_is_403(client, redis_clean):
    make_channel(budget=0)
    timestamp, nonce = str(int(time.time())), "1"
    query, body = encrypted_push(
        text_push(),
        token="wrong",
        encoding_aes_key=AES_KEY,
        receive_id=APP_ID,
        to_user=ACCOUNT,
        timestamp=timestamp,
        nonce=nonce,
    )
    response = client.post(f"{URL}?{urlencode({**query, 'encrypt_type': 'aes'})}", data=body, content_type="text/xml")
    assert response.status_code == 403
    assert not Message.objects.exists()


def test_a_replayed_push_with_an_old_timestamp_is_403(client, redis_clean):
    make_channel(budget=0)
    old, nonce = str(int(time.time()) - 3600), "99"
    query = {"signature": wechat_sign(TOKEN, old, nonce), "timestamp": old, "nonce": nonce}
    response = post(client, text_push(), query=query)
    assert response.status_code == 403
    assert not Message.objects.exists()
