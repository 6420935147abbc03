"""Personal WeChat through a bridge (our native format, gewechat, WeChatFerry ``wcfhttp``).

Authentication
    Every POST to the bridge webhook carries ``X-Kefu-Timestamp`` (Unix seconds) and ``X-Kefu-Signature`` =
    lowercase hex HMAC-SHA256, keyed with the channel's shared ``secret``, of ``timestamp + "." + raw body``.
    Requests more than 5 minutes old or early are refused. gewechat and wcfhttp cannot sign: put a small
    signing proxy in front of them, or set ``auth: "url_token"`` and give them the webhook URL with
    ``?token=<secret>`` (weaker: the secret sits in a URL).

Native inbound format (``POST`` JSON; one object or an array of objects)::

    {
      "id": "3f0c9a…",            # required, string or integer, unique per bridge account: the dedupe key
      "from": "wxid_p3n7c1z9ab4e12",  # required, the sender's wxid (in a group: the member who wrote)
      "nickname": "张女士",        # optional display name
      "type": "text",             # text (default) | image | voice | video | file | location | link | emoji | system
      "text": "发货了吗？",          # text; for other types a caption, title or transcript (may be "")
      "ts": 1749521973,           # Unix seconds (not ms)
      "room_id": "39217845603@chatroom",  # optional: set for group messages only
      "at_me": true,              # group messages: true when our account was @-mentioned
      "is_self": false,           # optional: true for messages our own account sent (ignored)
      "media_url": "https://…"    # optional, for media types
    }

Native outbound format (``POST`` to config ``send_url``, headers ``Idempotency-Key``, ``X-Kefu-Timestamp``,
``X-Kefu-Signature`` signed as above)::

    {"to": "wxid_…", "text": "…", "idempotency_key": "…", "room_id": "…@chatroom"}

``room_id`` is present only for group replies: post in the room and @-mention ``to``. The bridge must treat a
repeated ``Idempotency-Key`` as already delivered (answer 2xx again, do not send twice). A 2xx answer may carry
``{"id": "<bridge message id>"}``.

Groups (config ``group_mode``): ``"mention"`` (default) keeps group messages only when we were @-mentioned,
``"all"`` keeps every group message, ``"ignore"`` drops them all. Mentions (``@name`` + U+2005, or
``@<bot_nickname>``) are stripped from the text. Group messages have ``meta["room_id"]`` and
``meta["at_me"]``; ``sender_id`` is the member's wxid. Copy ``room_id`` (and ``nickname``) into the
``OutgoingMessage.meta`` of the reply so it goes back to the room.

Config: ``secret``, ``send_url``, ``send_format`` (``native`` default, ``gewechat``, ``wcferry``), ``group_mode``,
``bot_nickname`` (optional), ``auth`` (``hmac`` default or ``url_token``), ``timeout`` (default 10),
gewechat: ``gewe_token`` (``X-GEWE-TOKEN``), ``gewe_app_id`` (device ``appId``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

import requests

from bots.channels.base import (
    ChannelAdapter,
    ChannelError,
    InboundMessage,
    OutgoingMessage,
    SendError,
    SendResult,
    SignatureError,
    from_unix,
)
from bots.channels.xml import element_to_dict, safe_fromstring

TIMESTAMP_HEADER = "X-Kefu-Timestamp"
SIGNATURE_HEADER = "X-Kefu-Signature"
MAX_SKEW_SECONDS = 300
MAX_BODY_BYTES = 256 * 1024

GROUP_MODES = ("mention", "all", "ignore")
SEND_FORMATS = ("native", "gewechat", "wcferry")

# WeChat message type codes shared by gewechat (Data.MsgType) and WeChatFerry (type)
_WX_TYPES = {1: "text", 3: "image", 34: "voice", 43: "video", 48: "location", 49: "app", 47: "emoji"}
_WX_IGNORED = {37, 51, 9999, 10000, 10002}  # friend requests, status sync, system notices, recalls
_NATIVE_TYPES = {"text", "image", "voice", "video", "file", "location", "link"}
_MENTION = re.compile(r"@[^@\u2005\s]{1,40}\u2005")  # WeChat ends an @mention with U+2005
_ROOM_SUFFIX = "@chatroom"


# --- signing -------------------------------------------------------------------------------------------


def sign(body: bytes, secret: str, timestamp: int | str) -> str:
    """Hex HMAC-SHA256 of ``timestamp + "." + body`` keyed with ``secret``."""
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signed_headers(body: bytes, secret: str, *, now: float | None = None) -> dict[str, str]:
    timestamp = str(int(time.time() if now is None else now))
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(body, secret, timestamp)}


def _header(headers: Mapping[str, str], name: str) -> str:
    """Case-insensitive header lookup; also accepts Django ``META`` keys (``HTTP_X_KEFU_TIMESTAMP``)."""
    wanted = name.lower()
    meta_key = "http_" + wanted.replace("-", "_")
    for key, value in headers.items():
        if key.lower() in (wanted, meta_key):
            return str(value)
    return ""


def verify(headers: Mapping[str, str], body: bytes, secret: str, now: float | None = None) -> None:
    """Check ``X-Kefu-Timestamp``/``X-Kefu-Signature``; raise ``SignatureError`` (403) unless valid and fresh."""
    if not secret:
        raise SignatureError("no shared secret configured")
    timestamp = _header(headers, TIMESTAMP_HEADER).strip()
    signature = _header(headers, SIGNATURE_HEADER).strip().lower()
    if not timestamp or not signature:
        raise SignatureError("missing signature headers")
    if not (timestamp.isascii() and timestamp.isdigit()):  # "²".isdigit() is True, int("²") fails
        raise SignatureError("bad timestamp")
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > MAX_SKEW_SECONDS:
        raise SignatureError("timestamp outside the 5 minute window")
    if not hmac.compare_digest(sign(body, secret, timestamp), signature):
        raise SignatureError()


def verify_url_token(query: Mapping[str, str], secret: str) -> None:
    """For bridges that cannot sign (``auth: "url_token"``): ``?token=`` must equal the secret."""
    token = (query.get("token") or "") if query else ""
    if not secret or not token or not hmac.compare_digest(token.encode("utf-8"), secret.encode("utf-8")):
        raise SignatureError("bad url token")


# --- parsing helpers -----------------------------------------------------------------------------------


def strip_mentions(text: str, bot_nickname: str = "") -> str:
    text = _MENTION.sub("", text)
    if bot_nickname:
        text = re.sub(r"@" + re.escape(bot_nickname) + r"(?:[\u2005\s]|$)", "", text)
    return text.strip()


def _unwrap(value: Any) -> str:
    """gewechat wraps strings as ``{"string": …}``."""
    if isinstance(value, dict):
        value = value.get("string")
    return "" if value is None else str(value)


def _at_user_list(msg_source: str) -> list[str]:
    if not msg_source or "atuserlist" not in msg_source:
        return []
    try:
        fields = element_to_dict(safe_fromstring(msg_source))
    except ChannelError:
        return []
    raw = fields.get("atuserlist")
    if not isinstance(raw, str):
        return []
    return [part.strip() for part in raw.split(",") if part.strip()]


def _app_message(content: str) -> tuple[str, str, dict[str, Any]]:
    """Type 49 (appmsg) XML: a link (5), a file (6), a quote reply (57); anything else unsupported."""
    try:
        root = safe_fromstring(content.strip())
    except ChannelError:
        return "unsupported", "", {}
    appmsg = root.find("appmsg") if root.tag != "appmsg" else root
    if appmsg is None:
        return "unsupported", "", {}
    fields = element_to_dict(appmsg)
    title = str(fields.get("title") or "") if isinstance(fields.get("title"), str) else ""
    app_type = str(fields.get("type") or "")
    if app_type == "5":
        url = fields.get("url") if isinstance(fields.get("url"), str) else ""
        des = fields.get("des") if isinstance(fields.get("des"), str) else ""
        return "link", title, {"title": title, "url": url, "description": des, "app_type": app_type}
    if app_type == "6":
        return "file", title, {"file_name": title, "app_type": app_type}
    if app_type == "57":
        return "text", title, {"quote": True, "app_type": app_type}
    return "unsupported", title, {"app_type": app_type}


class BridgeAdapter(ChannelAdapter):
    kind = "bridge"

    def __init__(self, *, slug: str, config: dict[str, Any], session: requests.Session | None = None) -> None:
        super().__init__(slug=slug, config=config)
        self._session = session or requests.Session()

    @property
    def secret(self) -> str:
        return str(self.config.get("secret") or "")

    @property
    def group_mode(self) -> str:
        mode = str(self.config.get("group_mode") or "mention")
        return mode if mode in GROUP_MODES else "mention"

    # inbound -------------------------------------------------------------------------------------------
    def parse_request(
        self,
        headers: Mapping[str, str],
        body: bytes,
        *,
        query: Mapping[str, str] | None = None,
        now: float | None = None,
    ) -> list[InboundMessage]:
        """Verify (HMAC headers, or ``?token=`` with ``auth: "url_token"``) and parse a webhook body."""
        if self.config.get("auth") == "url_token":
            verify_url_token(query or {}, self.secret)
        else:
            verify(headers, body, self.secret, now=now)
        return self.parse(body)

    def parse(self, body: bytes | str) -> list[InboundMessage]:
        """Parse a body in any supported format (no verification). Ignored messages are simply left out."""
        raw = body.encode("utf-8") if isinstance(body, str) else body
        if len(raw) > MAX_BODY_BYTES:
            raise ChannelError("body too large", code="body_too_large", status=413)
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ChannelError("body is not JSON", code="malformed_json", status=400) from exc
        items: Iterable[Any] = data if isinstance(data, list) else [data]
        messages: list[InboundMessage] = []
        for item in items:
            if not isinstance(item, dict):
                raise ChannelError("expected a JSON object", code="malformed_json", status=400)
            message = self._parse_one(item)
            if message is not None:
                messages.append(message)
        return messages

    def _parse_one(self, item: dict[str, Any]) -> InboundMessage | None:
        if "TypeName" in item or "testMsg" in item:
            return self._parse_gewechat(item)
        if "sender" in item and ("is_group" in item or "roomid" in item):
            return self._parse_wcferry(item)
        if "from" in item and "id" in item:
            return self._parse_native(item)
        raise ChannelError("unknown bridge payload", code="unknown_format", status=400)

    def _keep_group(self, at_me: bool) -> bool:
        mode = self.group_mode
        return mode == "all" or (mode == "mention" and at_me)

    def _finish(
        self,
        *,
        external_id: str,
        sender: str,
        kind: str,
        text: str,
        ts: Any,
        nickname: str = "",
        room_id: str = "",
        at_me: bool = False,
        meta: dict[str, Any],
    ) -> InboundMessage | None:
        if not sender or sender.startswith("gh_"):  # gh_… senders are official accounts, not customers
            return None
        if room_id:
            if not self._keep_group(at_me):
                return None
            text = strip_mentions(text, str(self.config.get("bot_nickname") or ""))
            meta.update({"room_id": room_id, "at_me": at_me})
        return InboundMessage(
            external_id=external_id,
            sender_id=sender,
            type=kind,
            text=text,
            sent_at=from_unix(ts),
            nickname=nickname,
            meta=meta,
        )

    def _map_wx_type(self, code: Any, content: str) -> tuple[str, str, dict[str, Any]] | None:
        """(type, text, meta) for a WeChat type code; ``None`` for types we ignore."""
        try:
            number = int(code)
        except (TypeError, ValueError):
            number = -1
        if number in _WX_IGNORED:
            return None
        kind = _WX_TYPES.get(number, "unsupported")
        meta: dict[str, Any] = {"wx_type": number}
        if kind == "text":
            return "text", content, meta
        if kind == "app":
            app_kind, text, app_meta = _app_message(content)
            return app_kind, text, {**meta, **app_meta}
        if kind == "emoji":
            return "unsupported", "", {**meta, "kind": "emoji"}
        return kind, "", meta  # media: the content is XML describing the file, not text

    def _parse_native(self, item: dict[str, Any]) -> InboundMessage | None:
        if item.get("is_self"):
            return None
        kind = str(item.get("type") or "text").lower()
        meta: dict[str, Any] = {"format": "native"}
        if kind == "system":
            return None
        if kind not in _NATIVE_TYPES:
            meta["kind"] = kind
            kind = "unsupported"
        if item.get("media_url"):
            meta["media_url"] = str(item["media_url"])
        return self._finish(
            external_id=str(item.get("id") or ""),
            sender=str(item.get("from") or ""),
            kind=kind,
            text=str(item.get("text") or ""),
            ts=item.get("ts"),
            nickname=str(item.get("nickname") or ""),
            room_id=str(item.get("room_id") or ""),
            at_me=bool(item.get("at_me")),
            meta=meta,
        )

    def _parse_gewechat(self, item: dict[str, Any]) -> InboundMessage | None:
        if item.get("TypeName") != "AddMsg" or not isinstance(item.get("Data"), dict):
            return None  # ModContacts, Offline, the callback test message…
        data = item["Data"]
        own = str(item.get("Wxid") or "")
        from_user = _unwrap(data.get("FromUserName"))
        content = _unwrap(data.get("Content"))
        if not from_user or from_user == own:
            return None  # sent by our own account
        room_id = ""
        sender = from_user
        if from_user.endswith(_ROOM_SUFFIX):
            room_id = from_user
            prefix, sep, rest = content.partition(":\n")
            if not sep:
                return None  # group system notice without a sender
            sender, content = prefix.strip(), rest
            if sender == own:
                return None
        mapped = self._map_wx_type(data.get("MsgType"), content)
        if mapped is None:
            return None
        kind, text, meta = mapped
        meta["format"] = "gewechat"
        push = _unwrap(data.get("PushContent"))
        at_me = False
        if room_id:
            at_list = _at_user_list(_unwrap(data.get("MsgSource")))
            at_me = (own in at_list) if at_list else push.endswith("在群聊中@了你")
        nickname = ""
        if " : " in push:
            nickname = push.split(" : ", 1)[0]
        elif push.endswith("在群聊中@了你"):
            nickname = push[: -len("在群聊中@了你")]
        return self._finish(
            external_id=f"{item.get('Appid') or ''}:{data.get('NewMsgId') or data.get('MsgId') or ''}",
            sender=sender,
            kind=kind,
            text=text,
            ts=data.get("CreateTime"),
            nickname=nickname.strip(),
            room_id=room_id,
            at_me=at_me,
            meta=meta,
        )

    def _parse_wcferry(self, item: dict[str, Any]) -> InboundMessage | None:
        if item.get("is_self"):
            return None
        mapped = self._map_wx_type(item.get("type"), str(item.get("content") or ""))
        if mapped is None:
            return None
        kind, text, meta = mapped
        meta["format"] = "wcferry"
        for key in ("thumb", "extra"):
            if item.get(key):
                meta[key] = str(item[key])  # file paths on the wcferry host
        is_group = bool(item.get("is_group"))
        return self._finish(
            external_id=str(item.get("id") or ""),
            sender=str(item.get("sender") or ""),
            kind=kind,
            text=text,
            ts=item.get("ts"),
            room_id=str(item.get("roomid") or "") if is_group else "",
            at_me=bool(item.get("is_at")),
            meta=meta,
        )

    # outbound ------------------------------------------------------------------------------------------
    def _send_body(self, message: OutgoingMessage) -> tuple[dict[str, Any], dict[str, str]]:
        send_format = str(self.config.get("send_format") or "native")
        room_id = str(message.meta.get("room_id") or "")
        nickname = str(message.meta.get("nickname") or "")
        if send_format == "native":
            body: dict[str, Any] = {
                "to": message.recipient_id,
                "text": message.text,
                "idempotency_key": message.idempotency_key,
            }
            if room_id:
                body["room_id"] = room_id
            return body, {}
        # gewechat and wcferry need the "@昵称" in the text itself for every wxid they mention
        mention = bool(room_id and nickname)
        text = f"@{nickname} {message.text}" if mention else message.text
        if send_format == "gewechat":
            app_id = str(self.config.get("gewe_app_id") or "")
            if not app_id:
                raise SendError("gewe_app_id is not configured", retryable=False, code="misconfigured")
            body = {"appId": app_id, "toWxid": room_id or message.recipient_id, "content": text}
            if mention:
                body["ats"] = message.recipient_id
            return body, {"X-GEWE-TOKEN": str(self.config.get("gewe_token") or "")}
        if send_format == "wcferry":
            body = {
                "msg": text,
                "receiver": room_id or message.recipient_id,
                "aters": message.recipient_id if mention else "",
            }
            return body, {}
        raise SendError(f"unknown send_format {send_format!r}", retryable=False, code="misconfigured")

    def send(self, message: OutgoingMessage) -> SendResult:
        """POST the text to ``send_url``. Timeouts, network errors, 408/429/5xx are retryable; other 4xx and
        a gewechat ``ret != 200`` / wcferry ``status != 0`` answer are reported as below."""
        url = str(self.config.get("send_url") or "")
        if not url:
            raise SendError("send_url is not configured", retryable=False, code="misconfigured")
        body, extra_headers = self._send_body(message)
        raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": message.idempotency_key,
            **extra_headers,
        }
        if self.secret:
            headers.update(signed_headers(raw, self.secret))
        try:
            response = self._session.post(
                url, data=raw, headers=headers, timeout=float(self.config.get("timeout") or 10)
            )
        except requests.Timeout as exc:
            raise SendError("bridge timed out", retryable=True, code="timeout") from exc
        except requests.RequestException as exc:
            raise SendError(f"bridge unreachable ({type(exc).__name__})", retryable=True, code="network") from exc

        status = response.status_code
        if status in (408, 429) or status >= 500:
            raise SendError(f"bridge answered HTTP {status}", retryable=True, code=f"http_{status}")
        if status >= 400:
            raise SendError(f"bridge refused the message: HTTP {status}", retryable=False, code=f"http_{status}")
        try:
            result = response.json()
        except ValueError:
            result = {}
        if not isinstance(result, dict):
            result = {"body": result}

        send_format = str(self.config.get("send_format") or "native")
        if send_format == "gewechat":
            if result.get("ret") != 200:
                raise SendError(f"gewechat ret {result.get('ret')}: {result.get('msg', '')}", code="bridge_error")
            data = result.get("data") if isinstance(result.get("data"), dict) else {}
            return SendResult(external_id=str(data.get("newMsgId") or data.get("msgId") or ""), raw=result)
        if send_format == "wcferry":
            if result.get("status") != 0:
                raise SendError(
                    f"wcferry status {result.get('status')}: {result.get('message', '')}", code="bridge_error"
                )
            return SendResult(external_id="", raw=result)
        return SendResult(external_id=str(result.get("id") or ""), raw=result)
