"""bots.channels.http: the lean urllib3 session of the send path, against a real local HTTP server."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from bots.channels import http

SEEN: list[dict] = []


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        SEEN.append({"method": "GET", "path": self.path})
        self._answer(200, json.dumps({"path": self.path}).encode())

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        SEEN.append({"method": "POST", "path": self.path, "body": body, "key": self.headers.get("Idempotency-Key")})
        if self.path == "/slow":
            time.sleep(1.0)
        if self.path == "/moved":
            return self._answer(302, b"", {"Location": "/elsewhere"})
        if self.path == "/broken":
            return self._answer(502, b"<html>bad gateway</html>")
        return self._answer(200, json.dumps({"ok": True, "echo": body.decode()}).encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    SEEN.clear()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()


def test_post_sends_body_and_headers_and_reads_json(server):
    session = http.Session()
    body = json.dumps({"text": "你好"}, ensure_ascii=False).encode()
    for _ in range(2):  # the second call reuses the kept-alive connection
        response = session.post(f"{server}/send", data=body, headers={"Idempotency-Key": "k1"}, timeout=5)
        assert response.status_code == 200
        assert response.json() == {"ok": True, "echo": '{"text": "你好"}'}
    assert [(s["method"], s["path"], s["body"], s["key"]) for s in SEEN] == [("POST", "/send", body, "k1")] * 2


def test_request_appends_params_and_non_json_bodies_raise_value_error(server):
    session = http.Session()
    response = session.request("GET", f"{server}/token?x=1", params={"appid": "wx 1", "n": 2}, timeout=5)
    assert response.json() == {"path": "/token?x=1&appid=wx+1&n=2"}
    broken = session.post(f"{server}/broken", data=b"{}", timeout=5)
    assert broken.status_code == 502 and "bad gateway" in broken.text
    with pytest.raises(ValueError):
        broken.json()


def test_failures_are_raised_as_the_requests_exceptions_the_adapters_catch(server):
    session = http.Session()
    with pytest.raises(requests.Timeout):
        session.post(f"{server}/slow", data=b"{}", timeout=0.2)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with pytest.raises(requests.ConnectionError):
        session.post(f"http://127.0.0.1:{closed}/send", data=b"{}", timeout=2)
    with pytest.raises(requests.ConnectionError, match="redirect to '/elsewhere' not followed"):
        session.post(f"{server}/moved", data=b"{}", timeout=2)
    assert [s["path"] for s in SEEN].count("/elsewhere") == 0


def test_a_configured_proxy_keeps_requests(monkeypatch):
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    monkeypatch.delenv("ALL_PROXY", raising=False)
    monkeypatch.delenv("all_proxy", raising=False)
    assert isinstance(http.session_for_sending(), http.Session)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert isinstance(http.session_for_sending(), requests.Session)
