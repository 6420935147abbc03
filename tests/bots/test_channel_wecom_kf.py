"""微信客服 adapter: URL check, callback decryption, sync_msg paging, send_msg, service state."""

from __future__ import annotations

import copy
import re

import pytest

from bots.channels.base import ApiError, ChannelError, MemoryTokenStore, OutgoingMessage, SendError, SignatureError
from bots.channels.registry import adapter_for
from bots.channels.wecom_kf import KfCallback, WecomKfAdapter, kf_msgid
from tests.fakes.wechat_api import FakeWeChat, encrypted_push, fixture_bytes, fixture_json, wechat_sign

TOKEN = "kefu-callback-token"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
CORP_ID = "ww3f8a2c91d0b7e456"
OPEN_KFID = "wkq3ZxEQAAd8Rk2mYpV5tLs9HnC1bW4x"
CUSTOMER = "wmq3ZxEQAAk7GhT2pLw9RcV4nB8sD1fE"
TS, NONCE = "1749521762", "1372623149"

# wechatpy's published WeCom vectors (wechatpy/wechatpy tests/test_crypto.py)
WP_TOKEN, WP_AES_KEY, WP_CORP_ID = "123456", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "wx49f0ab532d5d035a"
WP_ECHO = {
    "msg_signature": "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96",
    "timestamp": "1411443780",
    "nonce": "437374425",
    "echostr": "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q==",
}
WP_CALLBACK_QUERY = {
    "msg_signature": "74d92dfeb87ba7c714f89d98870ae5eb62dff26d",
    "timestamp": "1411525903",
    "nonce": "461056294",
}
WP_CALLBACK_BODY = b"""<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>
<Encrypt><![CDATA[RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=]]></Encrypt>
<AgentID><![CDATA[1]]></AgentID>
</xml>"""


def make_adapter(**config) -> WecomKfAdapter:
    base = {"token": TOKEN, "aes_key": AES_KEY, "corp_id": CORP_ID, "secret": "kf-secret"}
    base.update(config)
    return WecomKfAdapter(slug="kf", config=base, token_store=MemoryTokenStore())


# --- callbacks ------------------------------------------------------------------------------------------------------


def test_verify_url_decrypts_the_published_echostr():
    adapter = make_adapter(token=WP_TOKEN, aes_key=WP_AES_KEY, corp_id=WP_CORP_ID)
    assert adapter.verify_url(WP_ECHO) == "5927782489442352469"


def test_verify_url_round_trip_and_bad_signature():
    from tests.fakes.wechat_api import wechat_encrypt

    echostr = wechat_encrypt("8735211954023", AES_KEY, CORP_ID)
    query = {"msg_signature": wechat_sign(TOKEN, TS, NONCE, echostr), "timestamp": TS, "nonce": NONCE}
    assert make_adapter().verify_url({**query, "echostr": echostr}) == "8735211954023"
    with pytest.raises(SignatureError):
        make_adapter().verify_url({**query, "echostr": echostr, "nonce": "1"})
    with pytest.raises(SignatureError):  # decrypts, but for another corp
        make_adapter(corp_id="ww0000000000000000").verify_url({**query, "echostr": echostr})
    with pytest.raises(SignatureError):
        make_adapter().verify_url({"echostr": echostr})


def test_parse_callback_returns_token_and_open_kfid():
    query, body = encrypted_push(
        fixture_bytes("wecom_kf/callback_event.xml"),
        token=TOKEN,
        encoding_aes_key=AES_KEY,
        receive_id=CORP_ID,
        to_user=CORP_ID,
        timestamp=TS,
        nonce=NONCE,
    )
    callback = make_adapter().parse_callback(query, body)
    assert callback == KfCallback(
        event="kf_msg_or_event",
        token="ENCq7Hs2KpV9xLmT3bR8wN5cZ1dF6gJ4yA0eU2iO7kQ9sXvM",
        open_kfid=OPEN_KFID,
        corp_id=CORP_ID,
        create_time=1749521762,
        raw=callback.raw,
    )


def test_parse_callback_with_the_published_vector():
    adapter = make_adapter(token=WP_TOKEN, aes_key=WP_AES_KEY, corp_id=WP_CORP_ID)
    callback = adapter.parse_callback(WP_CALLBACK_QUERY, WP_CALLBACK_BODY)
    assert callback.corp_id == WP_CORP_ID
    assert callback.raw["Content"] == "test"
    assert callback.event == ""  # a text message, not a kf_msg_or_event: the view ignores it


def test_parse_callback_refuses_bad_signatures_and_hostile_xml():
    query, body = encrypted_push(
        fixture_bytes("wecom_kf/callback_event.xml"),
        token=TOKEN,
        encoding_aes_key=AES_KEY,
        receive_id=CORP_ID,
        to_user=CORP_ID,
        timestamp=TS,
        nonce=NONCE,
    )
    with pytest.raises(SignatureError):
        make_adapter().parse_callback({**query, "msg_signature": "0" * 40}, body)
    with pytest.raises(SignatureError):
        make_adapter(token="other").parse_callback(query, body)
    with pytest.raises(ChannelError) as info:
        make_adapter().parse_callback(query, b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml>&e;</xml>')
    assert (info.value.status, info.value.code) == (400, "xml_forbidden")
    with pytest.raises(ChannelError) as info:
        make_adapter().parse_callback(query, b"<xml><Encrypt>")
    assert info.value.status == 400


# --- mapping sync_msg items -------------------------------------------------------------------------------------------


def test_map_the_fixture_items():
    response = fixture_json("wecom_kf/sync_msg_response.json")
    adapter = make_adapter()
    event, text, image, servicer = [adapter.map_item(item) for item in response["msg_list"]]

    assert event.type == "event"
    assert event.external_id == "LtcbzFyCQ2o1mCZLA6LD1i5anfRCQ1KzqGMikg4xQyA"
    assert event.sender_id == CUSTOMER  # from inside "event"
    assert event.meta["event"] == "enter_session"
    assert event.meta["open_kfid"] == OPEN_KFID
    assert event.meta["welcome_code"] == "gQP2IDH3AJsSSnuIkRy02rOqKHMviClkdOcuqO8Smmg"
    assert event.meta["scene"] == "order_detail"

    assert (text.type, text.sender_id, text.meta["origin"]) == ("text", CUSTOMER, 3)
    assert text.text == "你好，我要退货，订单号 202506091847，收到的鞋子尺码发错了"
    assert text.sent_at.timestamp() == 1749521740
    assert "from_servicer" not in text.meta

    assert (image.type, image.meta["media_id"][:8]) == ("image", "2Lh8XyZ0")

    assert servicer.type == "text"
    assert servicer.meta["from_servicer"] is True
    assert servicer.meta["servicer_userid"] == "LiuXiaomei"
    assert servicer.sender_id == CUSTOMER


def test_unknown_msgtypes_are_unsupported():
    item = {"msgid": "m1", "origin": 3, "msgtype": "channels_shop_product", "external_userid": CUSTOMER}
    message = make_adapter().map_item(item)
    assert (message.type, message.meta["msgtype"]) == ("unsupported", "channels_shop_product")
    assert make_adapter().map_item({"origin": 3, "msgtype": "text"}) is None  # no msgid, nothing to dedupe on


# --- sync paging against the fake ---------------------------------------------------------------------------------------


@pytest.fixture
def fake():
    with FakeWeChat.start() as server:
        yield server


def api_adapter(fake, **config) -> WecomKfAdapter:
    return make_adapter(api_base=fake.base_url, timeout=2, **config)


def kf_item(n: int, origin: int = 3) -> dict:
    return {
        "msgid": f"msg{n}",
        "open_kfid": OPEN_KFID,
        "external_userid": CUSTOMER,
        "send_time": 1749521700 + n,
        "origin": origin,
        "msgtype": "text",
        "text": {"content": f"message {n}"},
    }


def test_sync_all_pages_until_has_more_is_zero(fake):
    fixture_items = fixture_json("wecom_kf/sync_msg_response.json")["msg_list"]
    fake.set_kf_pages([[kf_item(1), kf_item(2)], [], fixture_items, [kf_item(9)]])  # an empty page still has_more
    messages, cursor = api_adapter(fake).sync_all(token="CALLBACK_TOKEN", cursor="", open_kfid=OPEN_KFID)

    assert [m.external_id for m in messages] == ["msg1", "msg2", *[i["msgid"] for i in fixture_items], "msg9"]
    assert cursor == "c4"
    assert fake.paths() == ["/cgi-bin/gettoken"] + ["/cgi-bin/kf/sync_msg"] * 4
    token_request = fake.requests[0]
    assert token_request.query == {"corpid": CORP_ID, "corpsecret": "kf-secret"}
    bodies = [r.json for r in fake.requests_to("/cgi-bin/kf/sync_msg")]
    assert "cursor" not in bodies[0]  # first pull starts from the oldest message
    assert [b.get("cursor") for b in bodies[1:]] == ["c1", "c2", "c3"]
    expected_keys = set(fixture_json("wecom_kf/sync_msg_request.json"))
    assert all(set(b) == expected_keys for b in bodies[1:])
    assert all(b["token"] == "CALLBACK_TOKEN" and b["open_kfid"] == OPEN_KFID for b in bodies)


def test_sync_resumes_from_a_stored_cursor_and_reports_has_more(fake):
    fake.set_kf_pages([[kf_item(1)], [kf_item(2)], [kf_item(3)]])
    adapter = api_adapter(fake)
    messages, next_cursor, has_more = adapter.sync_messages("T", "c1", OPEN_KFID)
    assert ([m.external_id for m in messages], next_cursor, has_more) == (["msg2"], "c2", True)
    pages = list(adapter.iter_sync(token="T", cursor="c1", open_kfid=OPEN_KFID))
    assert [(p.next_cursor, p.has_more) for p in pages] == [("c2", True), ("c3", False)]


def test_sync_stops_at_max_pages(fake):
    fake.set_kf_pages([[kf_item(n)] for n in range(10)])
    messages, cursor = api_adapter(fake).sync_all(token="T", cursor="", open_kfid=OPEN_KFID, max_pages=3)
    assert len(messages) == 3
    assert cursor == "c3"  # the next pull continues from here


def test_sync_refreshes_the_token_on_40014_and_raises_api_errors(fake):
    fake.set_kf_pages([[kf_item(1)]])
    fake.fail_next("/cgi-bin/kf/sync_msg", errcode=40014)
    messages, _ = api_adapter(fake).sync_all(token="T", cursor="", open_kfid=OPEN_KFID)
    assert len(messages) == 1
    assert fake.paths().count("/cgi-bin/gettoken") == 2
    fake.fail_next("/cgi-bin/kf/sync_msg", errcode=95000)
    with pytest.raises(ApiError) as info:
        api_adapter(fake).sync_all(token="T", cursor="", open_kfid=OPEN_KFID)
    assert info.value.errcode == 95000


# --- sending -------------------------------------------------------------------------------------------------------------


def test_send_msg_body_and_result(fake):
    expected = fixture_json("wecom_kf/send_msg_request.json")
    message = OutgoingMessage(
        recipient_id=CUSTOMER,
        text=expected["text"]["content"],
        idempotency_key="kefu_20250610_000187",
        meta={"open_kfid": OPEN_KFID},
    )
    result = api_adapter(fake).send(message)
    assert fake.requests_to("/cgi-bin/kf/send_msg")[0].json == expected
    assert result.external_id == "kefu_20250610_000187"


def test_send_uses_the_configured_open_kfid_and_refreshes_on_42001(fake):
    adapter = api_adapter(fake, open_kfid=OPEN_KFID)
    adapter.send(OutgoingMessage(recipient_id=CUSTOMER, text="一", idempotency_key="k1"))
    fake.expire_tokens()
    adapter.send(OutgoingMessage(recipient_id=CUSTOMER, text="二", idempotency_key="k2"))
    assert fake.paths() == [
        "/cgi-bin/gettoken",
        "/cgi-bin/kf/send_msg",
        "/cgi-bin/kf/send_msg",
        "/cgi-bin/gettoken",
        "/cgi-bin/kf/send_msg",
    ]
    sends = fake.requests_to("/cgi-bin/kf/send_msg")
    assert sends[1].json == sends[2].json  # the retry is the same message, same msgid
    assert sends[2].json["open_kfid"] == OPEN_KFID


def test_send_errors(fake):
    with pytest.raises(SendError) as info:
        api_adapter(fake).send(OutgoingMessage(recipient_id=CUSTOMER, text="x", idempotency_key="k"))
    assert (info.value.retryable, info.value.code) == (False, "no_open_kfid")
    with pytest.raises(SendError) as info:
        api_adapter(fake, open_kfid=OPEN_KFID).send(
            OutgoingMessage(recipient_id=CUSTOMER, text="长" * 683, idempotency_key="k")  # 2049 bytes
        )
    assert (info.value.retryable, info.value.code) == (False, "too_long")
    fake.fail_next("/cgi-bin/kf/send_msg", errcode=95001)
    with pytest.raises(SendError) as info:
        api_adapter(fake, open_kfid=OPEN_KFID).send(
            OutgoingMessage(recipient_id=CUSTOMER, text="x", idempotency_key="k")
        )
    assert info.value.retryable is True
    assert fake.paths()[-1] == "/cgi-bin/kf/send_msg"


@pytest.mark.parametrize(
    "key",
    ["kefu_20250610_000187", "outbox:42:attempt", "a" * 33, "订单-1", "550e8400-e29b-41d4-a716-446655440000"],
)
def test_msgid_is_sanitised_and_stable(key):
    msgid = kf_msgid(key)
    assert re.fullmatch(r"[0-9A-Za-z_-]{1,32}", msgid)
    assert kf_msgid(key) == msgid
    if re.fullmatch(r"[0-9A-Za-z_-]{1,32}", key):
        assert msgid == key
    else:
        assert msgid != kf_msgid(key + "x")


def test_service_state_trans(fake):
    adapter = api_adapter(fake)
    result = adapter.service_state_trans(OPEN_KFID, CUSTOMER, 3, servicer_userid="LiuXiaomei")
    assert result["msg_code"].startswith("MSGCODE")
    assert fake.requests_to("/cgi-bin/kf/service_state/trans")[0].json == fixture_json(
        "wecom_kf/service_state_trans_request.json"
    )
    adapter.service_state_trans(OPEN_KFID, CUSTOMER, 1)
    assert "servicer_userid" not in fake.requests_to("/cgi-bin/kf/service_state/trans")[1].json
    with pytest.raises(ChannelError):
        adapter.service_state_trans(OPEN_KFID, CUSTOMER, 3)


def test_send_welcome_uses_the_event_code(fake):
    result = api_adapter(fake).send_welcome(code="WELCOME", text="您好，我是小美", idempotency_key="welcome:1")
    body = fake.requests_to("/cgi-bin/kf/send_msg_on_event")[0].json
    assert body["code"] == "WELCOME" and body["text"] == {"content": "您好，我是小美"}
    assert result.external_id == kf_msgid("welcome:1")


def test_registry_builds_the_kf_adapter():
    adapter = adapter_for("kf", slug="kf", config=copy.deepcopy({"corp_id": CORP_ID}), token_store=MemoryTokenStore())
    assert isinstance(adapter, WecomKfAdapter)
