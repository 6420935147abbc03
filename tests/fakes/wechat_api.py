"""A real HTTP server faking the WeChat OA API, the WeCom 微信客服 API and bridge send endpoints.

Usage::

    with FakeWeChat.start() as fake:           # or fake = FakeWeChat.start(); ...; fake.stop()
        config = {"api_base": fake.base_url, ...}
        ...
        assert fake.paths() == [...]

Routes (tokens are checked: an unknown token gets 40001/40014, an expired one 42001):

- OA: ``GET /cgi-bin/token``, ``POST /cgi-bin/message/custom/send``
- WeCom: ``GET /cgi-bin/gettoken``, ``POST /cgi-bin/kf/sync_msg`` (pages from ``set_kf_pages``),
  ``/cgi-bin/kf/send_msg``, ``/cgi-bin/kf/send_msg_on_event``, ``/cgi-bin/kf/service_state/trans``,
  ``/cgi-bin/kf/service_state/get``
- bridges: ``POST /bridge/send`` (native), ``/gewe/v2/api/message/postText``, ``/wcf/text``. All three dedupe by
  ``Idempotency-Key``: a repeated key is counted in ``bridge_duplicates`` and answered like the first delivery.

Failure injection: ``fail_next(path, status=500)`` / ``fail_next(path, errcode=45015, times=2)``,
``delay_next(path, seconds)`` (the request is processed, then the answer is held back: a client timeout after
the work was done), ``expire_tokens()`` (every issued token answers 42001 from now on).

This file implements the protocol independently of ``bots.channels`` so tests can catch mistakes there.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import itertools
import json
import os
import struct
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "wechat"

OA_INVALID_TOKEN = 40001
WECOM_INVALID_TOKEN = 40014
EXPIRED_TOKEN = 42001

ERRMSGS = {
    40001: "invalid credential, access_token is invalid or not latest rid: 6847a1c3-5b1e7d20-3c94af61",
    40014: "invalid access_token, more info at https://open.work.weixin.qq.com/devtool/query?e=40014",
    42001: "access_token expired rid: 6847a2f0-1f8c2e4b-7a06d9c3",
    45015: "response out of time limit or subscription is canceled rid: 6847b0d2-4e9a13f7-02bd85ce",
}

BRIDGE_PATHS = ("/bridge/send", "/gewe/v2/api/message/postText", "/wcf/text")


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any
    received_at: float = 0.0  # time.monotonic() when the request arrived

    def header(self, name: str) -> str:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return ""


@dataclasses.dataclass
class _Fault:
    status: int | None
    errcode: int | None
    body: Any
    times: int


class FakeWeChat:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._faults: dict[str, list[_Fault]] = {}
        self._delays: dict[str, list[float]] = {}
        self._counter = itertools.count(1)
        self._valid_tokens: set[str] = set()
        self._expired_tokens: set[str] = set()
        self._stopping = threading.Event()
        self.kf_pages: list[list[dict[str, Any]]] = []
        self.bridge_secret: str | None = None  # when set, bridge sends must carry a valid X-Kefu-Signature
        self.gewe_token: str | None = None  # when set, gewechat sends must carry this X-GEWE-TOKEN
        self.bridge_deliveries: list[dict[str, Any]] = []
        self.bridge_duplicates = 0
        self._bridge_seen: dict[str, dict[str, Any]] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # lifecycle -----------------------------------------------------------------------------------------
    @classmethod
    def start(cls) -> FakeWeChat:
        fake = cls()
        handler = _make_handler(fake)
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        fake._server = server
        fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
        fake._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-wechat", daemon=True
        )
        fake._thread.start()
        return fake

    def stop(self) -> None:
        self._stopping.set()  # wake delayed handlers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeWeChat:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # inspection ----------------------------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    # control -------------------------------------------------------------------------------------------
    def fail_next(
        self, path: str, *, status: int | None = None, errcode: int | None = None, body: Any = None, times: int = 1
    ) -> None:
        """The next ``times`` requests to ``path`` fail: HTTP ``status``, or 200 with ``errcode``, or ``body``."""
        if status is None and errcode is None and body is None:
            status = 500
        with self._lock:
            self._faults.setdefault(path, []).append(_Fault(status, errcode, body, times))

    def delay_next(self, path: str, seconds: float, *, times: int = 1) -> None:
        with self._lock:
            self._delays.setdefault(path, []).extend([seconds] * times)

    def expire_tokens(self) -> None:
        with self._lock:
            self._expired_tokens |= self._valid_tokens
            self._valid_tokens.clear()

    def set_kf_pages(self, pages: list[list[dict[str, Any]]]) -> None:
        """``sync_msg`` pages: no cursor returns page 0 with next_cursor ``c1``, cursor ``cN`` returns page N."""
        with self._lock:
            self.kf_pages = [list(page) for page in pages]

    # internals used by the handler ---------------------------------------------------------------------
    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            faults = self._faults.get(path) or []
            if not faults:
                return None
            fault = faults[0]
            fault.times -= 1
            if fault.times <= 0:
                faults.pop(0)
            return fault

    def _take_delay(self, path: str) -> float:
        with self._lock:
            delays = self._delays.get(path) or []
            return delays.pop(0) if delays else 0.0

    def _issue_token(self, prefix: str) -> str:
        with self._lock:
            token = f"{prefix}-{next(self._counter)}"
            self._valid_tokens.add(token)
            return token

    def _token_errcode(self, token: str, invalid_code: int) -> int:
        with self._lock:
            if token in self._valid_tokens:
                return 0
            if token in self._expired_tokens:
                return EXPIRED_TOKEN
            return invalid_code

    def _next_id(self) -> int:
        with self._lock:
            return next(self._counter)

    def _bridge_deliver(self, key: str, body: Any, make_response: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        with self._lock:
            if key and key in self._bridge_seen:
                self.bridge_duplicates += 1
                return self._bridge_seen[key]
            response = make_response()
            self.bridge_deliveries.append(body)
            if key:
                self._bridge_seen[key] = response
            return response

    # routes --------------------------------------------------------------------------------------------
    def handle(self, request: RecordedRequest) -> tuple[int, Any]:
        path, query, payload = request.path, request.query, request.json
        if path == "/cgi-bin/token":
            if not query.get("appid") or not query.get("secret"):
                return 200, {"errcode": 41002, "errmsg": "appid missing"}
            return 200, {"access_token": self._issue_token("oa"), "expires_in": 7200}
        if path == "/cgi-bin/gettoken":
            if not query.get("corpid") or not query.get("corpsecret"):
                return 200, {"errcode": 41004, "errmsg": "corpsecret missing"}
            return 200, {"errcode": 0, "errmsg": "ok", "access_token": self._issue_token("wecom"), "expires_in": 7200}

        if path.startswith("/cgi-bin/"):
            invalid = OA_INVALID_TOKEN if path == "/cgi-bin/message/custom/send" else WECOM_INVALID_TOKEN
            errcode = self._token_errcode(query.get("access_token", ""), invalid)
            if errcode:
                return 200, {"errcode": errcode, "errmsg": ERRMSGS.get(errcode, "invalid token")}
            if not isinstance(payload, dict):
                return 200, {"errcode": 47001, "errmsg": "data format error"}
            return 200, self._handle_api(path, payload)

        if path in BRIDGE_PATHS:
            return self._handle_bridge(request)
        return 404, {"error": "not found"}

    def _handle_api(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        ok = {"errcode": 0, "errmsg": "ok"}
        if path == "/cgi-bin/message/custom/send":
            if not payload.get("touser") or payload.get("msgtype") != "text":
                return {"errcode": 40003, "errmsg": "invalid openid"}
            return ok
        if path == "/cgi-bin/kf/sync_msg":
            cursor = str(payload.get("cursor") or "")
            index = int(cursor[1:]) if cursor.startswith("c") and cursor[1:].isdigit() else 0
            with self._lock:
                pages = list(self.kf_pages)
            page = pages[index] if index < len(pages) else []
            has_more = 1 if index + 1 < len(pages) else 0
            next_cursor = f"c{min(index + 1, max(len(pages), 1))}"
            return {**ok, "next_cursor": next_cursor, "has_more": has_more, "msg_list": page}
        if path in ("/cgi-bin/kf/send_msg", "/cgi-bin/kf/send_msg_on_event"):
            msgid = payload.get("msgid") or f"sys{self._next_id()}"
            return {**ok, "msgid": msgid}
        if path == "/cgi-bin/kf/service_state/trans":
            if payload.get("service_state") == 3 and not payload.get("servicer_userid"):
                return {"errcode": 95014, "errmsg": "invalid servicer userid"}
            return {**ok, "msg_code": f"MSGCODE{self._next_id()}"}
        if path == "/cgi-bin/kf/service_state/get":
            return {**ok, "service_state": 1, "servicer_userid": ""}
        return {"errcode": 48001, "errmsg": "api unauthorized"}

    def _handle_bridge(self, request: RecordedRequest) -> tuple[int, Any]:
        if self.bridge_secret is not None:
            timestamp = request.header("X-Kefu-Timestamp")
            expected = hmac.new(
                self.bridge_secret.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256
            ).hexdigest()
            if not timestamp or not hmac.compare_digest(expected, request.header("X-Kefu-Signature")):
                return 401, {"error": "bad signature"}
        key = request.header("Idempotency-Key")
        body = request.json
        if not isinstance(body, dict):
            return 400, {"error": "JSON object expected"}
        if request.path == "/gewe/v2/api/message/postText":
            if self.gewe_token is not None and request.header("X-GEWE-TOKEN") != self.gewe_token:
                return 200, {"ret": 500, "msg": "token invalid"}

            def gewe_response() -> dict[str, Any]:
                new_id = self._counter_value()
                return {
                    "ret": 200,
                    "msg": "操作成功",
                    "data": {
                        "toWxid": body.get("toWxid"),
                        "createTime": int(time.time()),
                        "msgId": new_id,
                        "newMsgId": 7000000000000000000 + new_id,
                        "type": 1,
                    },
                }

            return 200, self._bridge_deliver(key, body, gewe_response)
        if request.path == "/wcf/text":
            return 200, self._bridge_deliver(key, body, lambda: {"status": 0, "message": "成功"})

        def native_response() -> dict[str, Any]:
            return {"ok": True, "id": f"bridge-{self._counter_value()}"}

        return 200, self._bridge_deliver(key, body, native_response)

    def _counter_value(self) -> int:
        # called with self._lock held (inside _bridge_deliver)
        return next(self._counter)


def _make_handler(fake: FakeWeChat) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            return

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                payload = json.loads(body) if body else None
            except ValueError:
                payload = None
            request = RecordedRequest(
                method=self.command,
                path=parts.path,
                query={k: v[-1] for k, v in parse_qs(parts.query).items()},
                headers=dict(self.headers.items()),
                body=body,
                json=payload,
                received_at=time.monotonic(),
            )
            fake._record(request)
            fault = fake._take_fault(request.path)
            if fault is not None:
                if fault.body is not None:
                    status, response = fault.status or 200, fault.body
                elif fault.errcode is not None:
                    status = fault.status or 200
                    response = {"errcode": fault.errcode, "errmsg": ERRMSGS.get(fault.errcode, "injected error")}
                else:
                    status, response = fault.status or 500, {"errcode": -1, "errmsg": "system error"}
            else:
                status, response = fake.handle(request)
            delay = fake._take_delay(request.path)
            if delay and fake._stopping.wait(delay):
                return
            data = json.dumps(response, ensure_ascii=False).encode("utf-8")
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                return  # the client gave up (timeout test)

        do_GET = _serve
        do_POST = _serve

    return Handler


# --- what the WeChat servers do to a push (written from the protocol notes, not from wechatpy) ---------------


def fixture_bytes(name: str) -> bytes:
    """A file under ``tests/fixtures/wechat`` (``"oa/text.xml"``)."""
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> Any:
    return json.loads(fixture_bytes(name))


def wechat_sign(*parts: str) -> str:
    """sha1 of the parts sorted and concatenated: ``signature`` (token, timestamp, nonce) and ``msg_signature``
    (the same plus the Encrypt value)."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()  # noqa: S324 - WeChat's scheme


def _aes_key(encoding_aes_key: str) -> bytes:
    key = base64.b64decode(encoding_aes_key + "=")
    assert len(key) == 32
    return key


def wechat_encrypt(plain: bytes | str, encoding_aes_key: str, receive_id: str, *, random16: bytes | None = None) -> str:
    """AES-256-CBC (IV = key[:16]) of 16 random bytes + big-endian length + message + receive id, PKCS#7 to 32."""
    message = plain.encode("utf-8") if isinstance(plain, str) else plain
    data = (random16 or os.urandom(16)) + struct.pack(">I", len(message)) + message + receive_id.encode("utf-8")
    pad = 32 - len(data) % 32
    data += bytes([pad]) * pad
    key = _aes_key(encoding_aes_key)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(data) + encryptor.finalize()).decode("ascii")


def wechat_decrypt(encrypted: str, encoding_aes_key: str) -> tuple[bytes, str]:
    """The inverse of ``wechat_encrypt``: ``(message, receive_id)``."""
    key = _aes_key(encoding_aes_key)
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    data = decryptor.update(base64.b64decode(encrypted)) + decryptor.finalize()
    data = data[: -data[-1]]
    (length,) = struct.unpack(">I", data[16:20])
    return data[20 : 20 + length], data[20 + length :].decode("utf-8")


def encrypted_push(
    plain: bytes | str, *, token: str, encoding_aes_key: str, receive_id: str, to_user: str, timestamp: str, nonce: str
) -> tuple[dict[str, str], bytes]:
    """A safe-mode push: ``(query with msg_signature/timestamp/nonce, outer XML body)``."""
    encrypted = wechat_encrypt(plain, encoding_aes_key, receive_id)
    body = (
        f"<xml><ToUserName><![CDATA[{to_user}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    ).encode()
    query = {"msg_signature": wechat_sign(token, timestamp, nonce, encrypted), "timestamp": timestamp, "nonce": nonce}
    return query, body
