"""The built-in web chat / simulator channel.

Inbound: the web widget (or the simulator) POSTs ``{"customer": "<id>", "text": "…", "client_msg_id": "…",
"nickname": "…"?}``; ``parse(body)`` returns ``[InboundMessage]`` (``client_msg_id`` is the dedupe key; a
missing one gets a random id, so that message is never deduplicated). Raises ``ChannelError`` (400).

Outbound: nothing leaves the process; the Django layer pushes the reply over WebSocket after commit.
``send`` only returns a ``SendResult`` whose ``external_id`` is derived from the idempotency key.

Config: ``max_text_chars`` (default 4000).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from bots.channels.base import ChannelAdapter, ChannelError, InboundMessage, OutgoingMessage, SendResult

DEFAULT_MAX_TEXT_CHARS = 4000
MAX_ID_CHARS = 128


class WebAdapter(ChannelAdapter):
    kind = "web"

    def parse(self, body: bytes | str | Mapping[str, Any]) -> list[InboundMessage]:
        if isinstance(body, Mapping):
            data: Any = body
        else:
            try:
                data = json.loads(body)
            except (ValueError, UnicodeDecodeError) as exc:
                raise ChannelError("body is not JSON", code="malformed_json", status=400) from exc
        if not isinstance(data, Mapping):
            raise ChannelError("expected a JSON object", code="malformed_json", status=400)
        customer = str(data.get("customer") or "").strip()
        text = data.get("text")
        if not customer or len(customer) > MAX_ID_CHARS:
            raise ChannelError("customer is required (at most 128 characters)", code="bad_request", status=400)
        if not isinstance(text, str) or not text.strip():
            raise ChannelError("text is required", code="bad_request", status=400)
        max_chars = int(self.config.get("max_text_chars") or DEFAULT_MAX_TEXT_CHARS)
        if len(text) > max_chars:
            raise ChannelError(f"text longer than {max_chars} characters", code="too_long", status=400)
        client_msg_id = str(data.get("client_msg_id") or "").strip() or f"web-{uuid.uuid4().hex}"
        if len(client_msg_id) > MAX_ID_CHARS:
            raise ChannelError("client_msg_id too long", code="bad_request", status=400)
        return [
            InboundMessage(
                external_id=client_msg_id,
                sender_id=customer,
                type="text",
                text=text.strip(),
                nickname=str(data.get("nickname") or "")[:64],
                meta={"client_msg_id": client_msg_id},
            )
        ]

    def send(self, message: OutgoingMessage) -> SendResult:
        return SendResult(external_id=f"web:{message.idempotency_key}", raw={"delivered": "websocket"})
