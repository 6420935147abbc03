"""Web/simulator channel and the registry."""

from __future__ import annotations

import json

import pytest

from bots.channels.base import ChannelAdapter, ChannelError, OutgoingMessage
from bots.channels.registry import ADAPTERS, adapter_for
from bots.channels.web import WebAdapter


def parse(data, **config):
    body = data if isinstance(data, bytes) else json.dumps(data, ensure_ascii=False).encode()
    return WebAdapter(slug="web", config=config).parse(body)


def test_parse_web_message():
    (message,) = parse({"customer": "c-42", "text": " 你好 ", "client_msg_id": "m-1", "nickname": "访客"})
    assert (message.external_id, message.sender_id, message.type, message.text) == ("m-1", "c-42", "text", "你好")
    assert message.nickname == "访客"


def test_missing_client_msg_id_gets_a_unique_id():
    first, second = parse({"customer": "c", "text": "a"})[0], parse({"customer": "c", "text": "a"})[0]
    assert first.external_id.startswith("web-") and first.external_id != second.external_id


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        {"text": "hi"},
        {"customer": "c"},
        {"customer": "c", "text": "   "},
        {"customer": "c", "text": 5},
        {"customer": "c", "text": "x" * 4001},
        {"customer": "c" * 129, "text": "hi"},
    ],
)
def test_bad_bodies_are_400(data):
    with pytest.raises(ChannelError) as info:
        parse(data)
    assert info.value.status == 400


def test_send_is_local():
    result = WebAdapter(slug="web", config={}).send(OutgoingMessage(recipient_id="c", text="hi", idempotency_key="k1"))
    assert result.external_id == "web:k1"


def test_registry_lists_every_kind():
    assert set(ADAPTERS) == {"oa", "kf", "bridge", "web"}
    for kind, adapter_class in ADAPTERS.items():
        adapter = adapter_for(kind, slug=f"{kind}-1", config={}, token_store=None)
        assert isinstance(adapter, adapter_class) and isinstance(adapter, ChannelAdapter)
        assert adapter.kind == kind and adapter.slug == f"{kind}-1"
