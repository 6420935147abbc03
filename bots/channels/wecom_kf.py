"""微信客服 (WeCom Customer Service) channel.

A callback only says "something is waiting"; the messages are pulled with ``sync_msg``.

Webhook flow (thin view, slow work in a task):

- ``GET``: ``adapter.verify_url(request.GET)`` returns the decrypted ``echostr`` to answer with (``text/plain``).
- ``POST``: ``adapter.parse_callback(request.GET, request.body)`` returns a ``KfCallback`` (``event``,
  ``token``, ``open_kfid``). Answer 200 with an empty body at once; if ``event == "kf_msg_or_event"`` queue a
  task with ``token`` and ``open_kfid``.
- The task loads the stored cursor for ``open_kfid`` and calls ``adapter.iter_sync(token=..., cursor=...,
  open_kfid=...)``, storing each page's messages and then its ``next_cursor`` (or ``sync_all`` for both at once).
- Raises ``SignatureError`` (403), ``ChannelError`` (400 malformed), ``ApiError`` (502, from sync/trans).

Pulled items become ``InboundMessage``:

- origin 3 (the customer): ``text``/``image``/``voice``/``video``/``file``/``location``/``link``, anything
  else ``unsupported`` (``meta["msgtype"]`` says what it was).
- origin 4 (system event): ``type="event"``, ``meta["event"]`` = ``event_type`` (``enter_session``,
  ``msg_send_fail``, ``session_status_change``, …) plus the event's fields (``welcome_code``, ``scene``,
  ``fail_msgid``, ``fail_type``…). ``sender_id`` is the event's ``external_userid`` (may be ``""``, e.g.
  ``servicer_status_change``).
- origin 5 (a 接待人员 typed in the WeCom client): mapped like a customer message but with
  ``meta["from_servicer"] = True`` and ``meta["servicer_userid"]``; ``sender_id`` is still the customer's
  ``external_userid`` (the conversation). The Django layer stores these as agent messages (or skips them);
  they must never be answered by the bot.
- Every item: ``external_id`` = ``msgid`` (dedupe key), ``meta["open_kfid"]``, ``meta["origin"]``.

``send(OutgoingMessage)`` calls ``send_msg``; ``open_kfid`` comes from ``message.meta["open_kfid"]`` or the
config; ``msgid`` is derived from the idempotency key (``kf_msgid``).

Config: ``token``, ``aes_key``, ``corp_id``, ``secret`` (the 微信客服 secret), ``open_kfid`` (optional default),
``api_base`` (default ``https://qyapi.weixin.qq.com``), ``timeout`` (seconds, default 10).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import struct
from collections.abc import Iterator, Mapping
from typing import Any

from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.enterprise.exceptions import InvalidCorpIdException
from wechatpy.exceptions import InvalidSignatureException

from bots.channels.base import (
    ApiError,
    ChannelError,
    InboundMessage,
    OutgoingMessage,
    SendError,
    SendResult,
    SignatureError,
    from_unix,
)
from bots.channels.oa import WeChatApiAdapter, api_error_to_send_error
from bots.channels.xml import parse_xml

DEFAULT_API_BASE = "https://qyapi.weixin.qq.com"
WECOM_TOKEN_ERRCODES = frozenset({40001, 40014, 42001})
ORIGIN_CUSTOMER, ORIGIN_EVENT, ORIGIN_SERVICER = 3, 4, 5
MAX_TEXT_BYTES = 2048
MAX_SYNC_PAGES = 100

SERVICE_STATE_NEW = 0  # 未处理
SERVICE_STATE_BOT = 1  # 由智能助手接待
SERVICE_STATE_QUEUED = 2  # 待接入池排队中
SERVICE_STATE_HUMAN = 3  # 由人工接待 (needs servicer_userid)
SERVICE_STATE_CLOSED = 4  # 已结束

_MSGID_OK = re.compile(r"^[0-9A-Za-z_-]{1,32}$")


def kf_msgid(idempotency_key: str) -> str:
    """``send_msg``'s ``msgid`` (≤ 32 chars of ``[0-9a-zA-Z_-]``) for an idempotency key.

    A key that already fits is used as is; anything else maps to ``k`` + 31 hex chars of its SHA-256, so the
    same key always gives the same msgid and different keys practically never collide.
    """
    if _MSGID_OK.match(idempotency_key):
        return idempotency_key
    return "k" + hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:31]


@dataclasses.dataclass(frozen=True)
class KfCallback:
    """A decrypted callback. Only ``event == "kf_msg_or_event"`` means "pull with sync_msg"."""

    event: str
    token: str
    open_kfid: str
    corp_id: str
    create_time: int
    raw: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class SyncPage:
    messages: list[InboundMessage]
    next_cursor: str
    has_more: bool


class WecomKfAdapter(WeChatApiAdapter):
    kind = "kf"
    default_api_base = DEFAULT_API_BASE

    def _api_settings(self) -> dict[str, Any]:
        corp_id = self._require("corp_id")
        secret = self._require("secret")
        # one token per corp + secret (the 微信客服 secret differs from app secrets)
        secret_tag = hashlib.sha256(secret.encode("utf-8")).hexdigest()[:12]
        return {
            "token_path": "/cgi-bin/gettoken",
            "token_params": {"corpid": corp_id, "corpsecret": secret},
            "token_key": f"wechat:wecom:{corp_id}:{secret_tag}:access_token",
            "token_errcodes": WECOM_TOKEN_ERRCODES,
        }

    def _crypto(self) -> WeChatCrypto:
        return WeChatCrypto(self._require("token"), self._require("aes_key"), self._require("corp_id"))

    @staticmethod
    def _sig_params(query: Mapping[str, str]) -> tuple[str, str, str]:
        signature = query.get("msg_signature") or ""
        timestamp = query.get("timestamp") or ""
        nonce = query.get("nonce") or ""
        if not (signature and timestamp and nonce):
            raise SignatureError("missing msg_signature parameters")
        return signature, timestamp, nonce

    # callbacks -----------------------------------------------------------------------------------------
    def verify_url(self, query: Mapping[str, str]) -> str:
        """The GET URL check: verify ``msg_signature`` and return the decrypted ``echostr``."""
        signature, timestamp, nonce = self._sig_params(query)
        echostr = query.get("echostr") or ""
        if not echostr:
            raise ChannelError("missing echostr", code="bad_request", status=400)
        try:
            return str(self._crypto().check_signature(signature, timestamp, nonce, echostr))
        except (InvalidSignatureException, InvalidCorpIdException) as exc:
            raise SignatureError() from exc
        except (ValueError, TypeError, IndexError, struct.error) as exc:
            raise ChannelError("cannot decrypt echostr", code="decrypt_failed", status=400) from exc

    def parse_callback(self, query: Mapping[str, str], body: bytes | str) -> KfCallback:
        """Verify and decrypt a POST callback (the encrypted ``<xml><ToUserName/><AgentID/><Encrypt/></xml>``)."""
        signature, timestamp, nonce = self._sig_params(query)
        outer = parse_xml(body)
        encrypt = outer.get("Encrypt")
        if not encrypt or not isinstance(encrypt, str):
            raise ChannelError("callback without <Encrypt>", code="malformed_xml", status=400)
        try:
            plain = self._crypto().decrypt_message({"Encrypt": encrypt}, signature, timestamp, nonce)
        except (InvalidSignatureException, InvalidCorpIdException) as exc:
            raise SignatureError() from exc
        except (ValueError, TypeError, IndexError, struct.error) as exc:
            raise ChannelError("cannot decrypt callback", code="decrypt_failed", status=400) from exc
        fields = parse_xml(plain)
        try:
            create_time = int(fields.get("CreateTime") or 0)
        except (TypeError, ValueError):
            create_time = 0
        return KfCallback(
            event=str(fields.get("Event") or ""),
            token=str(fields.get("Token") or ""),
            open_kfid=str(fields.get("OpenKfId") or ""),
            corp_id=str(fields.get("ToUserName") or ""),
            create_time=create_time,
            raw=fields,
        )

    # pulling -------------------------------------------------------------------------------------------
    def sync_messages(
        self, token: str, cursor: str, open_kfid: str, *, limit: int = 1000
    ) -> tuple[list[InboundMessage], str, bool]:
        """One ``sync_msg`` page: ``(messages, next_cursor, has_more)``.

        ``next_cursor`` falls back to ``cursor`` when the API sends none. Raises ``ApiError``.
        """
        payload: dict[str, Any] = {"limit": limit, "voice_format": 0}
        if cursor:
            payload["cursor"] = cursor
        if token:
            payload["token"] = token
        if open_kfid:
            payload["open_kfid"] = open_kfid
        body = self.api.call("/cgi-bin/kf/sync_msg", payload)
        items = body.get("msg_list") or []
        messages = [message for item in items if (message := self.map_item(item)) is not None]
        next_cursor = str(body.get("next_cursor") or cursor or "")
        has_more = str(body.get("has_more") or 0) == "1"  # an int 0/1, not a boolean
        return messages, next_cursor, has_more

    def iter_sync(
        self, *, token: str, cursor: str, open_kfid: str, limit: int = 1000, max_pages: int = MAX_SYNC_PAGES
    ) -> Iterator[SyncPage]:
        """Page through ``sync_msg`` until ``has_more`` is 0. Persist each page's ``next_cursor`` after storing
        its messages. Stops early after ``max_pages`` (pull again on the next callback) or when the cursor no
        longer moves on an empty page."""
        for _ in range(max_pages):
            messages, next_cursor, has_more = self.sync_messages(token, cursor, open_kfid, limit=limit)
            yield SyncPage(messages=messages, next_cursor=next_cursor, has_more=has_more)
            if not has_more or (not messages and next_cursor == cursor):
                return
            cursor = next_cursor

    def sync_all(
        self, *, token: str, cursor: str, open_kfid: str, limit: int = 1000, max_pages: int = MAX_SYNC_PAGES
    ) -> tuple[list[InboundMessage], str]:
        """Every page at once: ``(all messages, final cursor)``."""
        collected: list[InboundMessage] = []
        for page in self.iter_sync(token=token, cursor=cursor, open_kfid=open_kfid, limit=limit, max_pages=max_pages):
            collected.extend(page.messages)
            cursor = page.next_cursor
        return collected, cursor

    def map_item(self, item: Mapping[str, Any]) -> InboundMessage | None:
        """One ``msg_list`` item as an ``InboundMessage`` (``None`` when it has no msgid)."""
        msgid = str(item.get("msgid") or "")
        if not msgid:
            return None
        try:
            origin = int(item.get("origin") or 0)
        except (TypeError, ValueError):
            origin = 0
        msgtype = str(item.get("msgtype") or "")
        sent_at = from_unix(item.get("send_time"))
        meta: dict[str, Any] = {"origin": origin, "msgtype": msgtype, "open_kfid": str(item.get("open_kfid") or "")}

        if msgtype == "event" or origin == ORIGIN_EVENT:
            event = item.get("event") if isinstance(item.get("event"), dict) else {}
            meta.update({k: v for k, v in event.items() if k not in ("open_kfid", "external_userid")})
            meta["event"] = str(event.get("event_type") or "")
            meta["open_kfid"] = str(event.get("open_kfid") or meta["open_kfid"])
            sender = str(event.get("external_userid") or item.get("external_userid") or "")
            return InboundMessage(external_id=msgid, sender_id=sender, type="event", sent_at=sent_at, meta=meta)

        if origin == ORIGIN_SERVICER:
            meta["from_servicer"] = True
            meta["servicer_userid"] = str(item.get("servicer_userid") or "")
        sender = str(item.get("external_userid") or "")
        content = item.get(msgtype) if isinstance(item.get(msgtype), dict) else {}
        kind, text = "unsupported", ""
        if msgtype == "text":
            kind, text = "text", str(content.get("content") or "")
            if content.get("menu_id"):
                meta["menu_id"] = str(content["menu_id"])
        elif msgtype in ("image", "voice", "video", "file"):
            kind = msgtype
            meta["media_id"] = str(content.get("media_id") or "")
        elif msgtype == "location":
            kind = "location"
            text = str(content.get("address") or content.get("name") or "")
            meta.update(
                {
                    "latitude": content.get("latitude"),
                    "longitude": content.get("longitude"),
                    "name": str(content.get("name") or ""),
                    "address": str(content.get("address") or ""),
                }
            )
        elif msgtype == "link":
            kind, text = "link", str(content.get("title") or "")
            meta.update(
                {
                    "title": text,
                    "description": str(content.get("desc") or ""),
                    "url": str(content.get("url") or ""),
                    "pic_url": str(content.get("pic_url") or ""),
                }
            )
        return InboundMessage(external_id=msgid, sender_id=sender, type=kind, text=text, sent_at=sent_at, meta=meta)

    # outbound ------------------------------------------------------------------------------------------
    def _open_kfid(self, meta: Mapping[str, Any]) -> str:
        open_kfid = meta.get("open_kfid") or self.config.get("open_kfid")
        if not open_kfid:
            raise SendError(
                "no open_kfid in the message meta or the channel config", retryable=False, code="no_open_kfid"
            )
        return str(open_kfid)

    def send(self, message: OutgoingMessage) -> SendResult:
        """``send_msg`` a text. Too long (> 2048 bytes) is not retryable; API failures are."""
        if len(message.text.encode("utf-8")) > MAX_TEXT_BYTES:
            raise SendError("text longer than 2048 bytes", retryable=False, code="too_long")
        payload = {
            "touser": message.recipient_id,
            "open_kfid": self._open_kfid(message.meta),
            "msgid": kf_msgid(message.idempotency_key),
            "msgtype": "text",
            "text": {"content": message.text},
        }
        try:
            body = self.api.call("/cgi-bin/kf/send_msg", payload)
        except ApiError as exc:
            raise api_error_to_send_error(exc) from exc
        except ChannelError as exc:  # missing corp_id/secret
            raise SendError(exc.message, retryable=False, code=exc.code) from exc
        return SendResult(external_id=str(body.get("msgid") or payload["msgid"]), raw=body)

    def send_welcome(self, *, code: str, text: str, idempotency_key: str) -> SendResult:
        """``send_msg_on_event`` with an ``enter_session`` ``welcome_code`` (usable once, within 20 s)."""
        payload = {
            "code": code,
            "msgid": kf_msgid(idempotency_key),
            "msgtype": "text",
            "text": {"content": text},
        }
        try:
            body = self.api.call("/cgi-bin/kf/send_msg_on_event", payload)
        except ApiError as exc:
            raise api_error_to_send_error(exc) from exc
        return SendResult(external_id=str(body.get("msgid") or payload["msgid"]), raw=body)

    def service_state_trans(
        self, open_kfid: str, external_userid: str, state: int, servicer_userid: str | None = None
    ) -> dict[str, Any]:
        """Move the session (0 new, 1 bot, 2 queue, 3 human + ``servicer_userid``, 4 closed).

        Returns the API body (``msg_code`` feeds ``send_msg_on_event``). Raises ``ApiError``.
        """
        if state == SERVICE_STATE_HUMAN and not servicer_userid:
            raise ChannelError("state 3 needs a servicer_userid", code="bad_request", status=400)
        payload: dict[str, Any] = {
            "open_kfid": open_kfid,
            "external_userid": external_userid,
            "service_state": int(state),
        }
        if servicer_userid:
            payload["servicer_userid"] = servicer_userid
        return self.api.call("/cgi-bin/kf/service_state/trans", payload)

    def service_state_get(self, open_kfid: str, external_userid: str) -> dict[str, Any]:
        """The session's ``service_state`` (and ``servicer_userid``). Raises ``ApiError``."""
        return self.api.call(
            "/cgi-bin/kf/service_state/get", {"open_kfid": open_kfid, "external_userid": external_userid}
        )
