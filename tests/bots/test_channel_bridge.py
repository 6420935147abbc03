"""Personal-WeChat bridge adapter: HMAC verification, the three inbound formats, group rules, sending."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json

import pytest

from bots.channels.base import ChannelError, OutgoingMessage, SendError, SignatureError
from bots.channels.bridge import BridgeAdapter, strip_mentions, verify
from bots.channels.registry import adapter_for
from tests.fakes.wechat_api import FakeWeChat, fixture_bytes, fixture_json

SECRET = "bridge-shared-secret"
NOW = 1749522000
CUSTOMER = "wxid_p3n7c1z9ab4e12"
OWN = "wxid_k8v2q9m3xt5r22"
ROOM = "39217845603@chatroom"


def hmac_headers(body: bytes, timestamp: int = NOW, secret: str = SECRET) -> dict[str, str]:
    signature = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Kefu-Timestamp": str(timestamp), "X-Kefu-Signature": signature}


def make_adapter(**config) -> BridgeAdapter:
    base = {"secret": SECRET}
    base.update(config)
    return BridgeAdapter(slug="bridge", config=base)


def native(**fields) -> dict:
    message = {"id": "n-1", "from": CUSTOMER, "nickname": "张女士", "text": "发货了吗？", "ts": 1749521973}
    message.update(fields)
    return message


def dumps(data) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()


# --- verification -----------------------------------------------------------------------------------------------


def test_signature_ok():
    body = dumps(native())
    verify(hmac_headers(body), body, SECRET, now=NOW)
    verify(hmac_headers(body, timestamp=NOW - 299), body, SECRET, now=NOW)
    django_meta = {"HTTP_X_KEFU_TIMESTAMP": str(NOW), "HTTP_X_KEFU_SIGNATURE": hmac_headers(body)["X-Kefu-Signature"]}
    verify(django_meta, body, SECRET, now=NOW)
    lower = {k.lower(): v for k, v in hmac_headers(body).items()}
    verify(lower, body, SECRET, now=NOW)


@pytest.mark.parametrize(
    "case",
    ["wrong-secret", "tampered-body", "too-old", "too-new", "missing", "not-a-number", "garbage-signature"],
)
def test_signature_refused(case):
    body = dumps(native())
    headers = hmac_headers(body)
    signed_body = body
    if case == "wrong-secret":
        headers = hmac_headers(body, secret="other")
    elif case == "tampered-body":
        signed_body = body.replace("发货".encode(), "退款".encode())
    elif case == "too-old":
        headers = hmac_headers(body, timestamp=NOW - 301)
    elif case == "too-new":
        headers = hmac_headers(body, timestamp=NOW + 301)
    elif case == "missing":
        headers = {}
    elif case == "not-a-number":
        headers["X-Kefu-Timestamp"] = "soon"
    elif case == "garbage-signature":
        headers["X-Kefu-Signature"] = "zz"
    with pytest.raises(SignatureError) as info:
        verify(headers, signed_body, SECRET, now=NOW)
    assert info.value.status == 403


def test_parse_request_verifies_then_parses():
    adapter = make_adapter()
    body = dumps(native())
    assert adapter.parse_request(hmac_headers(body), body, now=NOW)[0].text == "发货了吗？"
    with pytest.raises(SignatureError):
        adapter.parse_request(hmac_headers(body, timestamp=NOW - 1000), body, now=NOW)
    with pytest.raises(SignatureError):
        make_adapter(secret="").parse_request(hmac_headers(body, secret=""), body, now=NOW)


def test_url_token_auth_for_bridges_that_cannot_sign():
    adapter = make_adapter(auth="url_token")
    body = fixture_bytes("bridge/wcferry_text.json")
    assert len(adapter.parse_request({}, body, query={"token": SECRET})) == 1
    with pytest.raises(SignatureError):
        adapter.parse_request(hmac_headers(body), body, query={"token": "nope"}, now=NOW)


# --- native format ---------------------------------------------------------------------------------------------------


def test_native_private_text():
    (message,) = make_adapter().parse(dumps(native()))
    assert (message.external_id, message.sender_id, message.type) == ("n-1", CUSTOMER, "text")
    assert (message.text, message.nickname) == ("发货了吗？", "张女士")
    assert message.sent_at.timestamp() == 1749521973
    assert "room_id" not in message.meta


def test_native_batch_types_and_self_messages():
    body = dumps(
        [
            native(id=1, type="image", text="", media_url="https://bridge.example/m/1.jpg"),
            native(id=2, type="emoji", text=""),
            native(id=3, is_self=True),
            native(id=4, type="system", text="你已添加了张女士"),
            native(id=5, type="voice", text="我想退货"),
            native(id=6),
        ]
    )
    messages = make_adapter().parse(body)
    assert [(m.external_id, m.type) for m in messages] == [
        ("1", "image"),
        ("2", "unsupported"),
        ("5", "voice"),
        ("6", "text"),
    ]
    assert messages[0].meta["media_url"] == "https://bridge.example/m/1.jpg"
    assert messages[2].text == "我想退货"


@pytest.mark.parametrize(
    ("mode", "at_me", "kept"),
    [
        ("mention", True, True),
        ("mention", False, False),
        ("all", False, True),
        ("all", True, True),
        ("ignore", True, False),
        (None, False, False),  # "mention" is the default
    ],
)
def test_native_group_rules(mode, at_me, kept):
    adapter = make_adapter(group_mode=mode) if mode else make_adapter()
    body = dumps(native(room_id=ROOM, at_me=at_me, text="@小美客服\u2005发票抬头开错了"))
    messages = adapter.parse(body)
    assert bool(messages) is kept
    if kept:
        (message,) = messages
        assert message.text == "发票抬头开错了"  # the mention is stripped
        assert message.meta["room_id"] == ROOM
        assert message.meta["at_me"] is at_me
        assert message.sender_id == CUSTOMER


def test_strip_mentions():
    assert strip_mentions("@小美客服\u2005 在吗") == "在吗"
    assert strip_mentions("@小美客服 在吗", bot_nickname="小美客服") == "在吗"
    assert strip_mentions("邮箱 a@b.com 对吗") == "邮箱 a@b.com 对吗"


# --- gewechat ----------------------------------------------------------------------------------------------------------


def test_gewechat_private_text():
    (message,) = make_adapter().parse(fixture_bytes("bridge/gewechat_addmsg_text.json"))
    # Appid + NewMsgId, the int64 kept exactly (JavaScript would have rounded it)
    assert message.external_id == "wx_Kq3Vb8ZxT1mRp7Ls2NcYd:5207381946627185013"
    assert message.sender_id == CUSTOMER
    assert message.nickname == "张女士"
    assert message.text.startswith("你好，我的快递三天没更新物流了")
    assert message.sent_at.timestamp() == 1749521973
    assert message.meta["format"] == "gewechat"


def test_gewechat_group_mention():
    (message,) = make_adapter().parse(fixture_bytes("bridge/gewechat_addmsg_group.json"))
    assert message.external_id == "wx_Kq3Vb8ZxT1mRp7Ls2NcYd:8830452197164823941"
    assert message.sender_id == CUSTOMER  # the prefix before ":\n", not the room
    assert message.meta["room_id"] == ROOM
    assert message.meta["at_me"] is True
    assert message.text == "发票抬头开错了，能重开成公司抬头吗？订单 202506091847"
    assert message.nickname == "张女士"


def test_gewechat_group_without_mention_is_ignored_unless_all():
    data = fixture_json("bridge/gewechat_addmsg_group.json")
    data["Data"]["MsgSource"] = "<msgsource><atuserlist><![CDATA[,wxid_someone_else]]></atuserlist></msgsource>"
    data["Data"]["PushContent"] = "张女士 : 发票抬头开错了"
    data["Data"]["Content"]["string"] = f"{CUSTOMER}:\n发票抬头开错了"
    assert make_adapter().parse(dumps(data)) == []
    (message,) = make_adapter(group_mode="all").parse(dumps(data))
    assert message.meta["at_me"] is False


def test_gewechat_self_sent_and_non_message_callbacks_are_ignored():
    data = fixture_json("bridge/gewechat_addmsg_text.json")
    data["Data"]["FromUserName"]["string"] = OWN
    assert make_adapter().parse(dumps(data)) == []
    group = fixture_json("bridge/gewechat_addmsg_group.json")
    group["Data"]["Content"]["string"] = f"{OWN}:\n@小美客服\u2005测试"
    assert make_adapter().parse(dumps(group)) == []
    assert make_adapter().parse(dumps({"TypeName": "ModContacts", "Appid": "a", "Wxid": OWN, "Data": {}})) == []
    assert make_adapter().parse(dumps({"testMsg": "回调地址链接成功！", "token": "t"})) == []
    official = fixture_json("bridge/gewechat_addmsg_text.json")
    official["Data"]["FromUserName"]["string"] = "gh_7a3c5e9b1d24"
    assert make_adapter().parse(dumps(official)) == []


@pytest.mark.parametrize(
    ("msg_type", "content", "kind", "text"),
    [
        (3, '<?xml version="1.0"?><msg><img aeskey="k" length="1"/></msg>', "image", ""),
        (34, '<msg><voicemsg length="3"/></msg>', "voice", ""),
        (43, '<msg><videomsg length="3"/></msg>', "video", ""),
        (47, '<msg><emoji md5="x"/></msg>', "unsupported", ""),
        (
            49,
            "<msg><appmsg><title>退货须知</title><type>5</type><url>https://x.example/r</url></appmsg></msg>",
            "link",
            "退货须知",
        ),
        (49, "<msg><appmsg><title>发票.pdf</title><type>6</type></appmsg></msg>", "file", "发票.pdf"),
        (49, "<msg><appmsg><title>小程序</title><type>33</type></appmsg></msg>", "unsupported", "小程序"),
        (49, "<msg><broken", "unsupported", ""),
        (12345, "??", "unsupported", ""),
    ],
)
def test_gewechat_non_text_types(msg_type, content, kind, text):
    data = fixture_json("bridge/gewechat_addmsg_text.json")
    data["Data"]["MsgType"] = msg_type
    data["Data"]["Content"]["string"] = content
    (message,) = make_adapter().parse(dumps(data))
    assert (message.type, message.text) == (kind, text)


def test_gewechat_system_messages_are_ignored():
    data = fixture_json("bridge/gewechat_addmsg_text.json")
    data["Data"]["MsgType"] = 10000
    assert make_adapter().parse(dumps(data)) == []


# --- WeChatFerry ----------------------------------------------------------------------------------------------------------


def test_wcferry_private_text():
    (message,) = make_adapter().parse(fixture_bytes("bridge/wcferry_text.json"))
    assert message.external_id == "7384619025573128466"  # uint64, exact
    assert message.sender_id == CUSTOMER
    assert message.text == "你好，下单时忘了勾选开发票，现在还能补开吗？"
    assert "room_id" not in message.meta  # roomid == sender for private chats in current builds
    assert message.meta["format"] == "wcferry"


def test_wcferry_group_at():
    (message,) = make_adapter().parse(fixture_bytes("bridge/wcferry_group_at.json"))
    assert message.meta["room_id"] == ROOM
    assert message.sender_id == CUSTOMER
    assert message.text == "退货地址发我一下，鞋子尺码发错了"


def test_wcferry_self_and_unmentioned_group_messages_are_ignored():
    data = fixture_json("bridge/wcferry_text.json")
    data["is_self"] = True
    assert make_adapter().parse(dumps(data)) == []
    group = fixture_json("bridge/wcferry_group_at.json")
    group["is_at"] = False
    assert make_adapter().parse(dumps(group)) == []
    old_build = fixture_json("bridge/wcferry_text.json")
    old_build["roomid"] = ""  # ≤ 39.0.x
    assert len(make_adapter().parse(dumps(old_build))) == 1


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b'{"hello": "world"}', b'"text"'])
def test_malformed_bodies_are_400(body):
    with pytest.raises(ChannelError) as info:
        make_adapter().parse(body)
    assert info.value.status == 400


# --- sending ---------------------------------------------------------------------------------------------------------------


@pytest.fixture
def fake():
    with FakeWeChat.start() as server:
        server.bridge_secret = SECRET  # the fake refuses unsigned or badly signed sends
        yield server


def send_adapter(fake, path="/bridge/send", **config) -> BridgeAdapter:
    return make_adapter(**{"send_url": fake.base_url + path, "timeout": 2, **config})


def test_native_send_is_signed_and_carries_the_idempotency_key(fake):
    message = OutgoingMessage(recipient_id=CUSTOMER, text="已为您催件", idempotency_key="outbox-17")
    result = send_adapter(fake).send(message)
    (request,) = fake.requests
    assert request.header("Idempotency-Key") == "outbox-17"
    assert request.json == {"to": CUSTOMER, "text": "已为您催件", "idempotency_key": "outbox-17"}
    assert result.external_id.startswith("bridge-")
    assert fake.bridge_deliveries == [request.json]


def test_native_group_reply_names_the_room(fake):
    message = OutgoingMessage(
        recipient_id=CUSTOMER,
        text="退货地址已私信",
        idempotency_key="o-1",
        meta={"room_id": ROOM, "nickname": "张女士"},
    )
    send_adapter(fake).send(message)
    assert fake.requests[0].json["room_id"] == ROOM


def test_retry_with_the_same_key_is_a_duplicate_not_a_second_delivery(fake):
    message = OutgoingMessage(recipient_id=CUSTOMER, text="已为您催件", idempotency_key="outbox-18")
    fake.delay_next("/bridge/send", 2)  # delivered, but the answer comes too late
    with pytest.raises(SendError) as info:
        send_adapter(fake, timeout=0.3).send(message)
    assert (info.value.retryable, info.value.code) == (True, "timeout")
    first = send_adapter(fake).send(message)  # the outbox retries the same row
    assert len(fake.bridge_deliveries) == 1
    assert fake.bridge_duplicates == 1
    assert first.external_id.startswith("bridge-")
    keys = [r.header("Idempotency-Key") for r in fake.requests]
    assert keys == ["outbox-18", "outbox-18"]


def test_bridge_refusing_the_signature_is_not_retryable(fake):
    fake.bridge_secret = "the bridge has another secret"
    with pytest.raises(SendError) as info:
        send_adapter(fake).send(OutgoingMessage(recipient_id=CUSTOMER, text="x", idempotency_key="k"))
    assert (info.value.retryable, info.value.code) == (False, "http_401")


@pytest.mark.parametrize("status", [500, 502, 429])
def test_server_errors_are_retryable(fake, status):
    fake.fail_next("/bridge/send", status=status)
    with pytest.raises(SendError) as info:
        send_adapter(fake).send(OutgoingMessage(recipient_id=CUSTOMER, text="x", idempotency_key="k"))
    assert info.value.retryable is True


def test_unreachable_bridge_is_retryable():
    adapter = make_adapter(send_url="http://127.0.0.1:9/send", timeout=1)
    with pytest.raises(SendError) as info:
        adapter.send(OutgoingMessage(recipient_id=CUSTOMER, text="x", idempotency_key="k"))
    assert info.value.retryable is True


def test_gewechat_send_format(fake):
    fake.gewe_token = "gewe-token"
    expected = fixture_json("bridge/gewechat_post_text_request.json")
    adapter = send_adapter(
        fake,
        "/gewe/v2/api/message/postText",
        send_format="gewechat",
        gewe_token="gewe-token",
        gewe_app_id="wx_Kq3Vb8ZxT1mRp7Ls2NcYd",
    )
    text = expected["content"].removeprefix("@张女士 ")
    message = OutgoingMessage(
        recipient_id=CUSTOMER, text=text, idempotency_key="g-1", meta={"room_id": ROOM, "nickname": "张女士"}
    )
    result = adapter.send(message)
    (request,) = fake.requests
    assert request.json == expected
    assert request.header("X-GEWE-TOKEN") == "gewe-token"
    assert int(result.external_id) > 2**53
    private = OutgoingMessage(recipient_id=CUSTOMER, text="您好", idempotency_key="g-2")
    adapter.send(private)
    assert fake.requests[1].json == {"appId": "wx_Kq3Vb8ZxT1mRp7Ls2NcYd", "toWxid": CUSTOMER, "content": "您好"}


def test_gewechat_failure_ret(fake):
    fake.gewe_token = "right"
    adapter = send_adapter(
        fake, "/gewe/v2/api/message/postText", send_format="gewechat", gewe_token="wrong", gewe_app_id="wx_a"
    )
    with pytest.raises(SendError) as info:
        adapter.send(OutgoingMessage(recipient_id=CUSTOMER, text="x", idempotency_key="k"))
    assert info.value.retryable is True
    assert "ret 500" in info.value.message


def test_wcferry_send_format(fake):
    expected = fixture_json("bridge/wcferry_send_text_request.json")
    adapter = send_adapter(fake, "/wcf/text", send_format="wcferry")
    text = expected["msg"].removeprefix("@张女士 ")
    message = OutgoingMessage(
        recipient_id=CUSTOMER, text=text, idempotency_key="w-1", meta={"room_id": ROOM, "nickname": "张女士"}
    )
    adapter.send(message)
    assert fake.requests[0].json == expected
    fake.fail_next("/wcf/text", body={"status": -1, "message": "失败"})
    with pytest.raises(SendError):
        adapter.send(OutgoingMessage(recipient_id=CUSTOMER, text="x", idempotency_key="w-2"))


def test_send_misconfiguration_is_not_retryable():
    with pytest.raises(SendError) as info:
        make_adapter().send(OutgoingMessage(recipient_id=CUSTOMER, text="x", idempotency_key="k"))
    assert info.value.retryable is False
    with pytest.raises(SendError) as info:
        make_adapter(send_url="http://127.0.0.1:9", send_format="carrier-pigeon").send(
            OutgoingMessage(recipient_id=CUSTOMER, text="x", idempotency_key="k")
        )
    assert info.value.retryable is False


def test_registry_builds_the_bridge_adapter_and_drops_options_it_does_not_take():
    adapter = adapter_for("bridge", slug="b", config=copy.deepcopy({"secret": SECRET}), token_store=object())
    assert isinstance(adapter, BridgeAdapter)
    with pytest.raises(ChannelError) as info:
        adapter_for("fax", slug="f", config={})
    assert info.value.status == 404
