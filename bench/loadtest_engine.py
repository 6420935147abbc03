"""The engine of ``manage.py loadtest``: simulated customers on a personal-WeChat bridge, and the fake bridge that
receives the bot's replies. Pure asyncio and the standard library (no Django), loopback only.

Each session is one customer (a wxid) holding one keep-alive HTTP connection to the product. A turn: POST one
signed message (native bridge JSON) to ``/bridge/<slug>/``, wait for the reply to reach the fake bridge, think
(a random ``0.5–1.5 × think_time``), next turn. Sessions start spread over ``ramp_up`` seconds.

Measured: webhook ack latency (first POST → 2xx), end-to-end latency (first POST → reply received by the fake
bridge; replies of one customer are matched to their messages in order), throughput. Counted: webhook retries (a
5xx or connection error is posted again, re-signed, up to ``webhook_retries`` times, as a bridge does), failed
webhooks (still not 2xx after the retries), lost messages (acknowledged, no reply by the end of the drain),
duplicated replies (more replies for a customer than messages, i.e. a second answer to the same message), repeated
sends (the same Idempotency-Key again: a retry the bridge dropped, as a real bridge must; not a duplicate the
customer sees).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import math
import random
import socket
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

TEXTS = ("你好", "什么时候发货", "退货怎么弄", "能开发票吗", "你们营业时间是几点", "好的谢谢")


@dataclasses.dataclass
class Config:
    base_url: str
    slug: str
    secret: str
    sessions: int = 500
    messages: int = 5
    think_time: float = 2.0
    ramp_up: float | None = None  # default: think_time
    reply_timeout: float = 15.0  # a turn waits this long for its reply before thinking and going on
    drain_timeout: float = 60.0  # after the last turn, wait this long for replies still on their way
    webhook_retries: int = 3  # a 5xx / connection error is retried like a bridge would (same message id)
    run_id: str = ""
    seed: int = 7


@dataclasses.dataclass
class Sent:
    session: int
    turn: int
    at: float
    acked: bool = False
    reply_at: float | None = None


@dataclasses.dataclass
class Report:
    sessions: int
    messages_sent: int
    acked: int
    failed_webhooks: int
    webhook_retries: int
    replies: int
    lost: int
    duplicated: int
    repeated_sends: int
    bad_signatures: int
    duration: float
    ack_ms: dict[str, float]
    e2e_ms: dict[str, float]
    throughput_msgs: float
    throughput_replies: float
    late: int  # replies that came after reply_timeout (counted in e2e, not lost)
    events: list[str]
    slowest: list[tuple[str, float]] = dataclasses.field(default_factory=list)  # (wall-clock time, e2e ms)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": math.nan, "p95": math.nan, "p99": math.nan, "max": math.nan, "mean": math.nan}
    ordered = sorted(values)

    def pick(q: float) -> float:  # nearest-rank
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    return {
        "p50": round(pick(0.50), 1),
        "p95": round(pick(0.95), 1),
        "p99": round(pick(0.99), 1),
        "max": round(ordered[-1], 1),
        "mean": round(sum(ordered) / len(ordered), 1),
    }


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


# --- minimal HTTP/1.1 over asyncio streams -------------------------------------------------------------------


async def _read_message(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    """One HTTP message head + body (Content-Length or chunked). Returns (start line, headers, body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                break
            chunks.append(data[:-2])
        return lines[0], headers, b"".join(chunks)
    length = int(headers.get("content-length") or 0)
    return lines[0], headers, await reader.readexactly(length) if length else b""


class HttpConnection:
    """One keep-alive connection; reconnects once when the server closed it."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except (ConnectionError, OSError):
                pass
        self._reader = self._writer = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        head = [f"POST {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        raw = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        for attempt in (1, 2):
            try:
                if self._writer is None:
                    await self._connect()
                assert self._writer is not None and self._reader is not None
                self._writer.write(raw)
                await self._writer.drain()
                status_line, response_headers, response_body = await _read_message(self._reader)
                if response_headers.get("connection", "").lower() == "close":
                    await self.close()
                return int(status_line.split()[1]), response_body
            except (ConnectionError, asyncio.IncompleteReadError, OSError):
                await self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


# --- the fake bridge -----------------------------------------------------------------------------------------


class FakeBridge:
    """Receives the bot's replies (native bridge format), checks their signature, drops repeated
    Idempotency-Keys like a real bridge must, and hands each new reply to the waiting session."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.deliveries: list[tuple[str, str, float]] = []  # (to, idempotency key, arrival)
        self.repeated_sends = 0
        self.bad_signatures = 0
        self._seen: set[str] = set()
        self._listeners: dict[str, Callable[[float], None]] = {}
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self, sock: socket.socket) -> None:
        """Serve on an already bound socket (so its port can be written into the channel before the loop runs)."""
        self._server = await asyncio.start_server(self._serve, sock=sock, backlog=512)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def on_delivery(self, recipient: str, callback: Callable[[float], None]) -> None:
        self._listeners[recipient] = callback

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._serve_connection(reader, writer)
        except asyncio.CancelledError:  # the run is over and the server closes its idle keep-alive connections
            pass
        finally:
            writer.close()

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                _line, headers, body = await _read_message(reader)
            except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
                return
            arrived = time.perf_counter()
            status, answer = self._handle(headers, body, arrived)
            data = json.dumps(answer).encode()
            writer.write(
                f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                f"Connection: keep-alive\r\n\r\n".encode()
                + data
            )
            await writer.drain()

    def _handle(self, headers: dict[str, str], body: bytes, arrived: float) -> tuple[int, dict]:
        timestamp = headers.get("x-kefu-timestamp", "")
        if self.secret and not hmac.compare_digest(
            sign(self.secret, timestamp, body), headers.get("x-kefu-signature", "")
        ):
            self.bad_signatures += 1
            return 401, {"error": "bad signature"}
        try:
            payload = json.loads(body)
        except ValueError:
            return 400, {"error": "JSON expected"}
        key = headers.get("idempotency-key") or str(payload.get("idempotency_key") or "")
        if key in self._seen:
            self.repeated_sends += 1
            return 200, {"ok": True, "id": key, "duplicate": True}
        self._seen.add(key)
        recipient = str(payload.get("to") or "")
        self.deliveries.append((recipient, key, arrived))
        listener = self._listeners.get(recipient)
        if listener is not None:
            listener(arrived)
        return 200, {"ok": True, "id": key}


# --- the customers -------------------------------------------------------------------------------------------


class Customer:
    def __init__(self, index: int, wxid: str) -> None:
        self.index = index
        self.wxid = wxid
        self.sent: list[Sent] = []
        self.replies: list[float] = []
        self._waiter: asyncio.Event = asyncio.Event()

    def reply_arrived(self, at: float) -> None:
        self.replies.append(at)
        position = len(self.replies) - 1
        if position < len(self.sent):
            self.sent[position].reply_at = at
        self._waiter.set()

    async def wait_reply(self, turn: int, timeout: float) -> bool:
        deadline = time.perf_counter() + timeout
        while len(self.replies) <= turn:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return False
            self._waiter.clear()
            try:
                await asyncio.wait_for(self._waiter.wait(), remaining)
            except TimeoutError:
                return False
        return True


async def run(
    config: Config,
    bridge: FakeBridge,
    *,
    midpoint: Callable[[], Awaitable[list[str]]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Drive ``config.sessions`` customers through the product; ``midpoint`` runs once when half of the
    messages have been posted (the worker kill). ``bridge`` must be started and be the channel's send_url."""
    rng = random.Random(config.seed)
    ramp = config.think_time if config.ramp_up is None else config.ramp_up
    run_id = config.run_id or f"{int(time.time())}{rng.randrange(1000):03d}"
    path = f"/bridge/{config.slug}/"
    customers = [Customer(i, f"wxid_lt{run_id}_{i:04d}") for i in range(config.sessions)]
    for customer in customers:
        bridge.on_delivery(customer.wxid, customer.reply_arrived)
    ack_ms: list[float] = []
    failed = 0
    retried = 0
    posted = 0
    total = config.sessions * config.messages
    events: list[str] = []
    midpoint_task: asyncio.Task | None = None

    async def session(customer: Customer) -> None:
        nonlocal failed, posted, retried, midpoint_task
        connection = HttpConnection(config.base_url)
        await asyncio.sleep(rng.uniform(0, ramp))
        try:
            for turn in range(config.messages):
                text = TEXTS[(customer.index + turn) % len(TEXTS)]
                body = json.dumps(
                    {
                        "id": f"lt-{run_id}-{customer.index}-{turn}",
                        "from": customer.wxid,
                        "nickname": f"压测{customer.index}",
                        "type": "text",
                        "text": text,
                        "ts": int(time.time()),
                    },
                    ensure_ascii=False,
                ).encode()
                record = Sent(customer.index, turn, time.perf_counter())
                customer.sent.append(record)
                for attempt in range(config.webhook_retries + 1):
                    if attempt:  # like a real bridge: try again later, signed anew (a new timestamp)
                        retried += 1
                        await asyncio.sleep(min(2 ** (attempt - 1), 4) * rng.uniform(1.0, 1.5))
                    timestamp = str(int(time.time()))
                    headers = {
                        "Content-Type": "application/json",
                        "X-Kefu-Timestamp": timestamp,
                        "X-Kefu-Signature": sign(config.secret, timestamp, body),
                    }
                    try:
                        status, _ = await connection.post(path, body, headers)
                    except (ConnectionError, OSError, asyncio.IncompleteReadError):
                        status = 0
                    if 200 <= status < 500 and status not in (408, 429):
                        break  # accepted, or refused for good (a 4xx is not worth repeating)
                ack_ms.append((time.perf_counter() - record.at) * 1000)
                posted += 1
                if posted * 2 >= total and midpoint is not None and midpoint_task is None:
                    midpoint_task = asyncio.ensure_future(midpoint())
                if not 200 <= status < 300:
                    failed += 1
                    customer.sent.pop()  # no reply is expected for a refused message
                    continue
                record.acked = True
                await customer.wait_reply(len(customer.sent) - 1, config.reply_timeout)
                await asyncio.sleep(config.think_time * rng.uniform(0.5, 1.5))
        finally:
            await connection.close()

    started = time.perf_counter()
    ticker = asyncio.ensure_future(_ticker(customers, started, total, progress)) if progress else None
    await asyncio.gather(*(session(c) for c in customers))
    sent_done = time.perf_counter()
    drain_deadline = sent_done + config.drain_timeout
    while time.perf_counter() < drain_deadline and any(len(c.replies) < len(c.sent) for c in customers):
        await asyncio.sleep(0.2)
    if ticker is not None:
        ticker.cancel()
    if midpoint_task is not None:
        events.extend(await midpoint_task)
    finished = max([sent_done] + [r for c in customers for r in c.replies])

    e2e = [(s.reply_at - s.at) * 1000 for c in customers for s in c.sent if s.reply_at is not None]
    acked = sum(1 for c in customers for s in c.sent if s.acked)
    lost = sum(max(len(c.sent) - len(c.replies), 0) for c in customers)
    duplicated = sum(max(len(c.replies) - len(c.sent), 0) for c in customers)
    late_replies = sum(1 for c in customers for s in c.sent if s.reply_at and s.reply_at - s.at > config.reply_timeout)
    duration = finished - started
    wall_offset = time.time() - time.perf_counter()  # to name the slowest messages by clock time (logs)
    slow = sorted(
        ((s.reply_at - s.at, s.at) for c in customers for s in c.sent if s.reply_at is not None), reverse=True
    )[:5]
    slowest = [(time.strftime("%H:%M:%S", time.localtime(at + wall_offset)), round(e * 1000, 1)) for e, at in slow]
    return Report(
        sessions=config.sessions,
        messages_sent=posted,
        acked=acked,
        failed_webhooks=failed,
        webhook_retries=retried,
        replies=sum(len(c.replies) for c in customers),
        lost=lost,
        duplicated=duplicated,
        repeated_sends=bridge.repeated_sends,
        bad_signatures=bridge.bad_signatures,
        duration=round(duration, 2),
        ack_ms=percentiles(ack_ms),
        e2e_ms=percentiles(e2e),
        throughput_msgs=round(acked / duration, 1) if duration else 0.0,
        throughput_replies=round(sum(len(c.replies) for c in customers) / duration, 1) if duration else 0.0,
        late=late_replies,
        events=events,
        slowest=slowest,
    )


async def _ticker(customers: list[Customer], started: float, total: int, progress: Callable[[str], None]) -> None:
    while True:
        await asyncio.sleep(5)
        sent = sum(len(c.sent) for c in customers)
        replies = sum(len(c.replies) for c in customers)
        progress(f"[{time.perf_counter() - started:5.1f}s] posted {sent}/{total}, replies {replies}")


def bind_loopback(port: int = 0) -> socket.socket:
    """A listening-ready TCP socket on 127.0.0.1 (port 0: any free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock
