"""Personal-WeChat bridge webhook end to end: HMAC headers, the three JSON formats, groups, the reply POSTed to
the (fake) bridge with its idempotency key; real PostgreSQL, Redis and Celery worker."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time

import pytest

from bots.models import Channel, Message, Outbox
from bots.services.channels import channel_upsert
from tests.conftest import wait_for
from tests.fakes.wechat_api import FakeWeChat, fixture_json

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "bridge-shared-secret-0123456789"
CUSTOMER = "wxid_p3n7c1z9ab4e12"
OWN = "wxid_k8v2q9m3xt5r22"
ROOM = "39217845603@chatroom"
URL = "/bridge/shop/"


@pytest.fixture
def fake():
    with FakeWeChat.start() as server:
        server.bridge_secret = SECRET
        yield server


@pytest.fixture
def bridge(fake) -> Channel:
    values = {"secret": SECRET, "send_url": fake.base_url + "/bridge/send", "rate_per_hour": 10000}
    return channel_upsert(kind="bridge", slug="shop", values=values).channel


def signed(body: bytes, *, timestamp: int | None = None, secret: str = SECRET) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"HTTP_X_KEFU_TIMESTAMP": ts, "HTTP_X_KEFU_SIGNATURE": signature}


def post(client, payload, *, url: str = URL, headers: dict[str, str] | None = None, raw: bytes | None = None):
    body = raw if raw is not None else json.dumps(payload, ensure_ascii=False).encode()
    return client.post(
        url, data=body, content_type="application/json", **(signed(body) if headers is None else headers)
    )


def native(**fields) -> dict:
    message = {"id": "n-1", "from": CUSTOMER, "nickname": "张女士", "text": "发货了吗？", "ts": int(time.time())}
    message.update(fields)
    return message


def test_a_signed_message_is_stored_and_the_reply_reaches_the_bridge_with_its_key(client, fake, bridge, celery_worker):
    response = post(client, native())
    assert response.status_code == 200, response.content
    assert response.json() == {"ok": True, "received": 1, "duplicates": 0}
    message = Message.objects.get(direction="in")
    assert (message.external_id, message.content, message.type) == ("n-1", "发货了吗？", "text")
    assert message.conversation.customer.nickname == "张女士"
    wait_for(lambda: fake.bridge_deliveries)
    reply = Message.objects.get(direction="out")
    outbox = Outbox.objects.get(message=reply)
    wait_for(lambda: Outbox.objects.get(pk=outbox.pk).status == Outbox.Status.SENT)
    request = fake.requests_to("/bridge/send")[0]
    assert request.header("Idempotency-Key") == outbox.idempotency_key
    assert request.json == {"to": CUSTOMER, "text": reply.content, "idempotency_key": outbox.idempotency_key}


def test_the_same_message_twice_is_stored_and_answered_once(client, fake, bridge, celery_worker):
    body = json.dumps(native(id="dup-1"), ensure_ascii=False).encode()
    assert post(client, None, raw=body).json()["received"] == 1
    # the bridge delivers it again (restart, history sync), signed anew
    again = post(client, None, raw=body, headers=signed(body, timestamp=int(time.time()) - 2))
    assert again.json() == {"ok": True, "received": 0, "duplicates": 1}
    wait_for(lambda: fake.bridge_deliveries)
    time.sleep(1.0)
    assert Message.objects.filter(direction="in").count() == 1
    assert len(fake.bridge_deliveries) == 1


@pytest.mark.parametrize(
    "case", ["stale", "future", "bad-signature", "wrong-secret", "missing-headers", "tampered-body"]
)
def test_bad_or_stale_signatures_are_403_and_nothing_is_stored(client, bridge, redis_clean, case):
    body = json.dumps(native(), ensure_ascii=False).encode()
    headers = {
        "stale": signed(body, timestamp=int(time.time()) - 310),
        "future": signed(body, timestamp=int(time.time()) + 310),
        "bad-signature": {**signed(body), "HTTP_X_KEFU_SIGNATURE": "0" * 64},
        "wrong-secret": signed(body, secret="another-secret-0123456789"),
        "missing-headers": {},
        "tampered-body": signed(body),
    }[case]
    raw = body.replace("发货".encode(), "退款".encode()) if case == "tampered-body" else body
    response = post(client, None, raw=raw, headers=headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "bad_signature"
    assert not Message.objects.exists()


def test_a_replayed_request_is_403(client, bridge, redis_clean):
    body = json.dumps(native(id="replay-1"), ensure_ascii=False).encode()
    headers = signed(body)
    assert post(client, None, raw=body, headers=headers).status_code == 200
    response = post(client, None, raw=body, headers=headers)
    assert response.status_code == 403
    assert Message.objects.count() == 1


def test_gewechat_private_text(client, bridge, redis_clean):
    payload = fixture_json("bridge/gewechat_addmsg_text.json")
    response = post(client, payload)
    assert response.json()["received"] == 1
    message = Message.objects.get()
    assert message.external_id == f"{payload['Appid']}:{payload['Data']['NewMsgId']}"
    assert message.conversation.customer.external_id == payload["Data"]["FromUserName"]["string"]
    assert message.meta["format"] == "gewechat"


def test_wcferry_private_text(client, bridge, redis_clean):
    raw = fixture_json("bridge/wcferry_text.json")
    response = post(client, raw)
    assert response.json()["received"] == 1
    message = Message.objects.get()
    assert message.external_id == str(raw["id"])
    assert message.meta["format"] == "wcferry"
    assert message.content == raw["content"]


def test_int64_ids_are_kept_exactly(client, bridge, redis_clean):
    body = fixture_json("bridge/wcferry_text.json")
    raw = json.dumps(body, ensure_ascii=False).encode()
    assert post(client, None, raw=raw, headers=signed(raw)).status_code == 200
    assert Message.objects.get().external_id == str(body["id"])  # > 2**53, no float rounding


def test_a_group_message_without_a_mention_is_ignored(client, bridge, redis_clean):
    group = copy.deepcopy(fixture_json("bridge/wcferry_group_at.json"))
    group.update({"is_at": False, "content": "有人在吗", "xml": ""})
    gewe = copy.deepcopy(fixture_json("bridge/gewechat_addmsg_group.json"))
    gewe["Data"]["MsgSource"] = "<msgsource><atuserlist></atuserlist></msgsource>"
    gewe["Data"]["PushContent"] = "张女士 : 有人在吗"
    gewe["Data"]["Content"]["string"] = f"{CUSTOMER}:\n有人在吗"
    for payload in (group, gewe):
        response = post(client, payload)
        assert response.status_code == 200
        assert response.json()["received"] == 0
    assert not Message.objects.exists()


def test_a_group_message_with_a_mention_is_answered_in_the_room(client, fake, bridge, celery_worker):
    payload = fixture_json("bridge/gewechat_addmsg_group.json")
    assert post(client, payload).json()["received"] == 1
    message = Message.objects.get(direction="in")
    assert message.meta["room_id"] == ROOM and message.meta["at_me"] is True
    assert "@" not in message.content
    wait_for(lambda: fake.bridge_deliveries)
    reply = Message.objects.get(direction="out")
    assert reply.meta == {"room_id": ROOM}  # the nickname stays in the encrypted customer row
    delivery = fake.bridge_deliveries[0]
    assert delivery["room_id"] == ROOM and delivery["to"] == CUSTOMER


def test_a_wcferry_group_reply_mentions_the_member_by_nickname(client, fake, bridge, celery_worker):
    channel_upsert(
        kind="bridge", slug="shop", values={"send_format": "wcferry", "send_url": fake.base_url + "/wcf/text"}
    )
    assert post(client, fixture_json("bridge/gewechat_addmsg_group.json")).json()["received"] == 1
    wait_for(lambda: fake.bridge_deliveries)
    reply = Message.objects.get(direction="out")
    assert fake.bridge_deliveries[0] == {"msg": f"@张女士 {reply.content}", "receiver": ROOM, "aters": CUSTOMER}


def test_wcferry_group_mention_carries_the_room(client, bridge, redis_clean):
    assert post(client, fixture_json("bridge/wcferry_group_at.json")).json()["received"] == 1
    message = Message.objects.get()
    assert message.meta["room_id"] == ROOM
    assert message.conversation.customer.external_id == CUSTOMER


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'{"unknown": "format"}', b""])
def test_malformed_json_is_400_without_a_traceback(client, bridge, redis_clean, raw):
    response = post(client, None, raw=raw, headers=signed(raw))
    assert response.status_code == 400
    assert set(response.json()["error"]) == {"code", "message"}
    assert "Traceback" not in response.content.decode()
    assert not Message.objects.exists()


def test_a_body_over_one_mib_is_413(client, bridge, redis_clean):
    raw = json.dumps(native(text="长" * (600 * 1024)), ensure_ascii=False).encode()
    assert len(raw) > 1024 * 1024
    response = post(client, None, raw=raw, headers=signed(raw))
    assert response.status_code == 413
    assert not Message.objects.exists()


def test_an_unknown_message_type_is_stored_as_unsupported(client, bridge, redis_clean):
    assert post(client, native(id="u-1", type="miniprogram", text="")).json()["received"] == 1
    assert Message.objects.get().type == "unsupported"


def test_only_post_is_allowed_and_unknown_slugs_are_404(client, bridge, redis_clean):
    assert client.get(URL).status_code == 405
    assert post(client, native(), url="/bridge/unknown/").status_code == 404
    Channel.objects.filter(pk=bridge.pk).update(enabled=False)
    assert post(client, native()).status_code == 404
    assert not Message.objects.exists()
