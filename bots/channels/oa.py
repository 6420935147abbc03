"""微信公众号 (Official Account) channel: URL check, push parsing (plain, compatible and safe mode), passive
replies and 客服消息 sending.

Webhook flow (the Django view stays thin):

- ``GET``: ``adapter.verify_url(request.GET)`` returns the ``echostr`` to answer with (``text/plain``).
- ``POST``: ``adapter.parse_request(request.GET, request.body)`` returns ``[InboundMessage]`` (one per push).
  Answer within 5 s with ``adapter.render_passive_reply(message, text)`` (``text/xml``) or with
  ``ACK`` (``b"success"``) and reply later through ``send``.
- Both raise ``SignatureError`` (403) or ``ChannelError`` (400 for malformed/forbidden XML).

``send(OutgoingMessage)`` posts a 客服消息 and raises ``SendError`` (``retryable=False, code="outside_window"``
for 45015).

Config keys: ``token``, ``aes_key`` (EncodingAESKey, safe/compatible mode), ``app_id``, ``app_secret``,
``api_base`` (default ``https://api.weixin.qq.com``), ``timeout`` (seconds, default 10), ``kf_account``
(optional 客服账号 to send as).

``WeChatApiClient`` (access-token cache + one refresh-and-retry on token errors) is shared with ``wecom_kf``.
"""

from __future__ import annotations

import json
import logging
import secrets
import struct
import time
from collections.abc import Iterable, Mapping
from typing import Any

import requests
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.replies import TextReply
from wechatpy.utils import check_signature

from bots.channels.base import (
    ApiError,
    ChannelAdapter,
    ChannelError,
    InboundMessage,
    OutgoingMessage,
    SendError,
    SendResult,
    SignatureError,
    TokenStore,
    default_token_store,
    from_unix,
)
from bots.channels.xml import parse_xml, render_xml

logger = logging.getLogger(__name__)

ACK = b"success"  # answer when there is no passive reply; WeChat then stops retrying
DEFAULT_API_BASE = "https://api.weixin.qq.com"
OA_TOKEN_ERRCODES = frozenset({40001, 40014, 42001})
ERRCODE_OUTSIDE_WINDOW = 45015


# --- shared access-token API client (OA and WeCom) -------------------------------------------------------


class WeChatApiClient:
    """Calls a Tencent JSON API that takes ``?access_token=``; caches the token in a ``TokenStore``.

    ``call`` refreshes the token once and retries when the API answers with one of ``token_errcodes``.
    Failures raise ``ApiError`` (``errcode`` set when the API sent one). Tokens never appear in messages.
    """

    def __init__(
        self,
        *,
        api_base: str,
        token_path: str,
        token_params: Mapping[str, str],
        token_key: str,
        token_store: TokenStore,
        token_errcodes: Iterable[int],
        timeout: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        self.api_base = api_base.rstrip("/")
        self.token_path = token_path
        self.token_params = dict(token_params)
        self.token_key = token_key
        self.token_store = token_store
        self.token_errcodes = frozenset(token_errcodes)
        self.timeout = timeout
        self.session = session or requests.Session()

    def _request(self, method: str, path: str, *, params: Mapping[str, str], payload: Any = None) -> dict[str, Any]:
        url = self.api_base + path
        data = None
        headers = {}
        if payload is not None:
            data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json; charset=utf-8"
        try:
            response = self.session.request(
                method, url, params=params, data=data, headers=headers, timeout=self.timeout
            )
        except requests.Timeout as exc:
            raise ApiError(f"timeout calling {path}", code="timeout") from exc
        except requests.RequestException as exc:
            raise ApiError(f"{type(exc).__name__} calling {path}", code="network") from exc
        if response.status_code != 200:
            raise ApiError(f"HTTP {response.status_code} from {path}", code=f"http_{response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise ApiError(f"non-JSON response from {path}", code="bad_response") from exc
        if not isinstance(body, dict):
            raise ApiError(f"unexpected response from {path}", code="bad_response")
        return body

    def _fetch_token(self) -> tuple[str, int]:
        body = self._request("GET", self.token_path, params=self.token_params)
        token = body.get("access_token")
        errcode = body.get("errcode") or 0
        if errcode or not token:
            raise ApiError(
                f"access token request failed: errcode {errcode} {body.get('errmsg', '')}".strip(),
                errcode=errcode or None,
                code="token_failed",
            )
        try:
            expires_in = int(body.get("expires_in") or 7200)
        except (TypeError, ValueError):
            expires_in = 7200
        return str(token), expires_in

    def access_token(self, *, stale: str | None = None) -> str:
        """A valid token, fetched under the store's lock; ``stale`` is a token the API just refused."""
        token = self.token_store.get(self.token_key)
        if token and token != stale:
            return token
        with self.token_store.lock(self.token_key):
            token = self.token_store.get(self.token_key)
            if token and token != stale:  # another worker refreshed while we waited
                return token
            token, expires_in = self._fetch_token()
            self.token_store.set(self.token_key, token, max(expires_in - 300, 60))
            return token

    def call(self, path: str, payload: Any = None, *, method: str = "POST") -> dict[str, Any]:
        token = self.access_token()
        body = self._request(method, path, params={"access_token": token}, payload=payload)
        errcode = body.get("errcode") or 0
        if errcode in self.token_errcodes:
            logger.info("access token refused (errcode %s) on %s; refreshing once", errcode, path)
            token = self.access_token(stale=token)
            body = self._request(method, path, params={"access_token": token}, payload=payload)
            errcode = body.get("errcode") or 0
            if errcode in self.token_errcodes:
                raise ApiError(f"access token refused again: errcode {errcode}", errcode=errcode, code="token_invalid")
        if errcode:
            raise ApiError(
                f"{path} failed: errcode {errcode} {body.get('errmsg', '')}".strip(),
                errcode=errcode,
                code=f"errcode_{errcode}",
            )
        return body


def api_error_to_send_error(exc: ApiError) -> SendError:
    return SendError(exc.message, retryable=exc.retryable, code=exc.code)


# --- the adapter -------------------------------------------------------------------------------------------


class WeChatApiAdapter(ChannelAdapter):
    """Common part of the adapters that call a WeChat-style HTTP API (Official Account, WeCom 微信客服): the token
    store, an optional HTTP session (tests), required config values, and one ``WeChatApiClient`` per adapter built
    from ``_api_settings`` (token endpoint, its parameters, the Redis key of the shared token, the errcodes that
    mean "token expired")."""

    def __init__(
        self,
        *,
        slug: str,
        config: dict[str, Any],
        token_store: TokenStore | None = None,
        session: requests.Session | None = None,
    ) -> None:
        super().__init__(slug=slug, config=config)
        self.token_store = token_store or default_token_store()
        self._session = session
        self._api: WeChatApiClient | None = None

    def _require(self, key: str) -> str:
        value = self.config.get(key)
        if not value:
            raise ChannelError(f"channel {self.slug!r} has no {key!r} configured", code="misconfigured", status=500)
        return str(value)

    default_api_base = DEFAULT_API_BASE  # the channel's config "api_base" (tests: a local fake) comes first

    def _api_settings(self) -> dict[str, Any]:
        """``token_path``, ``token_params``, ``token_key`` and ``token_errcodes`` of this kind's API."""
        raise NotImplementedError

    @property
    def api(self) -> WeChatApiClient:
        if self._api is None:
            self._api = WeChatApiClient(
                api_base=self.config.get("api_base") or self.default_api_base,
                token_store=self.token_store,
                timeout=float(self.config.get("timeout") or 10),
                session=self._session,
                **self._api_settings(),
            )
        return self._api


class OfficialAccountAdapter(WeChatApiAdapter):
    kind = "oa"

    def _api_settings(self) -> dict[str, Any]:
        app_id = self._require("app_id")
        return {
            "token_path": "/cgi-bin/token",
            "token_params": {"grant_type": "client_credential", "appid": app_id, "secret": self._require("app_secret")},
            "token_key": f"wechat:oa:{app_id}:access_token",
            "token_errcodes": OA_TOKEN_ERRCODES,
        }

    def _crypto(self) -> WeChatCrypto:
        return WeChatCrypto(self._require("token"), self._require("aes_key"), self._require("app_id"))

    # inbound -------------------------------------------------------------------------------------------
    def _check_plain_signature(self, query: Mapping[str, str]) -> None:
        signature = query.get("signature") or ""
        timestamp = query.get("timestamp") or ""
        nonce = query.get("nonce") or ""
        if not (signature and timestamp and nonce):
            raise SignatureError("missing signature parameters")
        try:
            check_signature(self._require("token"), signature, timestamp, nonce)
        except InvalidSignatureException as exc:
            raise SignatureError() from exc

    def verify_url(self, query: Mapping[str, str]) -> str:
        """The GET URL check (服务器配置): returns ``echostr`` to echo back. The echostr is plain in every mode."""
        self._check_plain_signature(query)
        return query.get("echostr") or ""

    def parse_request(self, query: Mapping[str, str], body: bytes | str) -> list[InboundMessage]:
        """Verify and parse one push. Returns a one-element list (the common webhook shape).

        Plain mode: ``signature`` is checked before the body is parsed. Safe/compatible mode
        (``encrypt_type=aes``): ``signature`` is checked when present, then ``msg_signature`` over ``<Encrypt>``
        and the AES envelope (receive id = app_id). Compatible mode without ``aes_key`` configured falls back to
        the plain fields, which then need a valid ``signature``.
        """
        aes_mode = (query.get("encrypt_type") or "").lower() == "aes"
        if query.get("signature") or not aes_mode:
            self._check_plain_signature(query)
        outer = parse_xml(body)
        if aes_mode and self.config.get("aes_key"):
            return [self._to_inbound(parse_xml(self._decrypt(query, outer)), encrypted=True)]
        if aes_mode:
            if not (outer.get("MsgType") and query.get("signature")):
                raise ChannelError(
                    f"channel {self.slug!r} has no 'aes_key' configured", code="misconfigured", status=500
                )
        return [self._to_inbound(outer, encrypted=False)]

    def _decrypt(self, query: Mapping[str, str], outer: Mapping[str, Any]) -> str:
        msg_signature = query.get("msg_signature") or ""
        timestamp = query.get("timestamp") or ""
        nonce = query.get("nonce") or ""
        encrypt = outer.get("Encrypt")
        if not (msg_signature and timestamp and nonce):
            raise SignatureError("missing msg_signature parameters")
        if not encrypt or not isinstance(encrypt, str):
            raise ChannelError("safe-mode body without <Encrypt>", code="malformed_xml", status=400)
        try:
            # a dict, so wechatpy never parses the untrusted outer body itself
            return self._crypto().decrypt_message({"Encrypt": encrypt}, msg_signature, timestamp, nonce)
        except (InvalidSignatureException, InvalidAppIdException) as exc:
            raise SignatureError() from exc
        except (ValueError, TypeError, IndexError, struct.error) as exc:  # garbage ciphertext
            raise ChannelError("cannot decrypt message", code="decrypt_failed", status=400) from exc

    def _to_inbound(self, fields: dict[str, Any], *, encrypted: bool) -> InboundMessage:
        msg_type = str(fields.get("MsgType") or "").strip()
        sender = str(fields.get("FromUserName") or "")
        if not msg_type or not sender:
            raise ChannelError("push without MsgType or FromUserName", code="malformed_xml", status=400)
        create_time = str(fields.get("CreateTime") or "")
        meta: dict[str, Any] = {
            "msg_type": msg_type,
            "account": str(fields.get("ToUserName") or ""),  # our 原始ID gh_…, needed for passive replies
            "encrypted": encrypted,
        }
        common = {"sender_id": sender, "sent_at": from_unix(create_time), "meta": meta}
        lowered = msg_type.lower()

        if lowered == "event":
            event = str(fields.get("Event") or "")
            event_key = fields.get("EventKey") if isinstance(fields.get("EventKey"), str) else ""
            meta.update({"event": event.lower(), "event_key": event_key})
            for source, target in (("Ticket", "ticket"), ("Latitude", "latitude"), ("Longitude", "longitude")):
                if isinstance(fields.get(source), str):
                    meta[target] = fields[source]
            if meta["event"] == "subscribe" and event_key.startswith("qrscene_"):
                meta["scene"] = event_key[len("qrscene_") :]
            return InboundMessage(external_id=f"{sender}:{create_time}:{event}", type="event", text=event_key, **common)

        external_id = str(fields.get("MsgId") or "") or f"{sender}:{create_time}:{msg_type}"
        try:
            message = parse_message(_flat_xml(fields))
        except (KeyError, ValueError, TypeError, AttributeError):  # an odd push must never crash the webhook
            logger.warning("wechatpy could not parse a %r push", msg_type, exc_info=True)
            message = None
        kind = getattr(message, "type", "unknown")

        if kind == "text":
            return InboundMessage(external_id=external_id, type="text", text=message.content or "", **common)
        if kind == "image":
            meta.update({"media_id": message.media_id or "", "pic_url": message.image or ""})
            return InboundMessage(external_id=external_id, type="image", **common)
        if kind == "voice":
            recognition = (message.recognition or "").strip()
            meta.update(
                {
                    "media_id": message.media_id or "",
                    "format": message.format or "",
                    "recognition": recognition,
                    "media_id_16k": str(fields.get("MediaId16K") or ""),
                }
            )
            return InboundMessage(external_id=external_id, type="voice", text=recognition, **common)
        if kind in ("video", "shortvideo"):
            meta.update(
                {
                    "media_id": message.media_id or "",
                    "thumb_media_id": message.thumb_media_id or "",
                    "short": kind == "shortvideo",
                }
            )
            return InboundMessage(external_id=external_id, type="video", **common)
        if kind == "location":
            meta.update(
                {
                    "latitude": _float(fields.get("Location_X")),  # X is the latitude
                    "longitude": _float(fields.get("Location_Y")),
                    "scale": str(fields.get("Scale") or ""),
                    "label": message.label or "",
                }
            )
            return InboundMessage(external_id=external_id, type="location", text=message.label or "", **common)
        if kind == "link":
            meta.update(
                {"title": message.title or "", "description": message.description or "", "url": message.url or ""}
            )
            return InboundMessage(external_id=external_id, type="link", text=message.title or "", **common)
        return InboundMessage(external_id=external_id, type="unsupported", **common)

    # passive reply -------------------------------------------------------------------------------------
    def render_passive_reply(self, inbound: InboundMessage | Mapping[str, Any], text: str) -> bytes:
        """The XML to return in the HTTP response to a push, encrypted when the push was.

        ``inbound`` is the ``InboundMessage`` from ``parse_request`` (or a mapping with ``sender_id``,
        ``account`` and ``encrypted``). An empty ``text`` gives ``ACK``.
        """
        if isinstance(inbound, InboundMessage):
            openid, account, encrypted = (
                inbound.sender_id,
                inbound.meta.get("account", ""),
                inbound.meta.get("encrypted"),
            )
        else:
            openid, account, encrypted = inbound["sender_id"], inbound.get("account", ""), inbound.get("encrypted")
        if not text:
            return ACK
        # the user and the account are swapped in a reply. wechatpy wraps the content in CDATA verbatim,
        # so split any "]]>" in the text the way cdata() does to keep the XML well formed.
        content = text.replace("]]>", "]]]]><![CDATA[>")
        reply = TextReply(source=account, target=openid, time=int(time.time()), content=content).render()
        if encrypted:
            reply = self._crypto().encrypt_message(reply, secrets.token_hex(8), str(int(time.time())))
        return reply.encode("utf-8")

    # outbound ------------------------------------------------------------------------------------------
    def send(self, message: OutgoingMessage) -> SendResult:
        """Send a 客服消息 (text). 45015 (outside the window / unfollowed) is not retryable."""
        payload: dict[str, Any] = {
            "touser": message.recipient_id,
            "msgtype": "text",
            "text": {"content": message.text},
        }
        kf_account = message.meta.get("kf_account") or self.config.get("kf_account")
        if kf_account:
            payload["customservice"] = {"kf_account": kf_account}
        try:
            body = self.api.call("/cgi-bin/message/custom/send", payload)
        except ApiError as exc:
            if exc.errcode == ERRCODE_OUTSIDE_WINDOW:
                raise SendError(exc.message, retryable=False, code="outside_window") from exc
            raise api_error_to_send_error(exc) from exc
        except ChannelError as exc:  # missing app_id/app_secret: retrying cannot help until the config is fixed
            raise SendError(exc.message, retryable=False, code=exc.code) from exc
        return SendResult(external_id=str(body.get("msgid") or ""), raw=body)


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _flat_xml(fields: Mapping[str, Any]) -> str:
    """Re-render the already safely parsed top-level fields for wechatpy (nested elements are dropped)."""
    return render_xml({k: v for k, v in fields.items() if isinstance(v, str)})
