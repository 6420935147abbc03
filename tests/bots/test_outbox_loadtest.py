"""The load-test engine (bench/loadtest_engine.py) against a tiny fake product: what it counts as lost, duplicated,
failed and retried, and that it signs like a bridge. No Django: the real run is ``manage.py loadtest``."""

from __future__ import annotations

import asyncio
import json

from bench import loadtest_engine as engine

SECRET = "loadtest-secret-0123456789"


class FakeProduct:
    """Acks each webhook and answers through the fake bridge; can drop, double or refuse on demand."""

    def __init__(self, bridge_port: int, *, drop: set[str], double: set[str], fail_once: set[str]) -> None:
        self.bridge = engine.HttpConnection(f"http://127.0.0.1:{bridge_port}")
        self.drop, self.double, self.fail_once = drop, double, fail_once
        self.seen: list[str] = []
        self.bad_signatures = 0
        self.port = 0
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self.server = server

    async def _serve(self, reader, writer) -> None:
        try:
            while True:
                try:
                    _line, headers, body = await engine._read_message(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                if engine.sign(SECRET, headers["x-kefu-timestamp"], body) != headers["x-kefu-signature"]:
                    self.bad_signatures += 1
                message = json.loads(body)
                status = 200
                if message["id"] in self.fail_once:
                    self.fail_once.discard(message["id"])
                    status = 503
                else:
                    self.seen.append(message["id"])
                    asyncio.ensure_future(self._answer(message))
                data = b'{"ok": true}'
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
                await writer.drain()
        finally:
            writer.close()

    async def _answer(self, message: dict) -> None:
        if message["id"] in self.drop:
            return
        for copy in range(2 if message["id"] in self.double else 1):
            reply = json.dumps({"to": message["from"], "text": "您好", "idempotency_key": f"{message['id']}-{copy}"})
            timestamp = "1750000000"
            headers = {
                "Idempotency-Key": f"{message['id']}-{copy}",
                "X-Kefu-Timestamp": timestamp,
                "X-Kefu-Signature": engine.sign(SECRET, timestamp, reply.encode()),
            }
            async with self._lock:  # one shared keep-alive connection to the bridge
                await self.bridge.post("/send", reply.encode(), headers)
            if message["id"] in self.double:
                await asyncio.sleep(0.01)
        async with self._lock:  # and a retry of the first reply: the bridge must drop it
            await self.bridge.post("/send", reply.encode(), headers)


def test_engine_counts_lost_duplicated_retried_and_latency():
    async def scenario():
        bridge = engine.FakeBridge(SECRET)
        await bridge.start(engine.bind_loopback())
        run_id = "t1"
        product = FakeProduct(
            bridge.port,
            drop={f"lt-{run_id}-1-1"},
            double={f"lt-{run_id}-2-0"},
            fail_once={f"lt-{run_id}-0-0"},
        )
        await product.start()
        config = engine.Config(
            base_url=f"http://127.0.0.1:{product.port}",
            slug="lt",
            secret=SECRET,
            sessions=4,
            messages=2,
            think_time=0.05,
            reply_timeout=0.5,
            drain_timeout=0.5,
            run_id=run_id,
        )
        midpoint_calls = []

        async def midpoint():
            midpoint_calls.append(1)
            return ["killed nothing"]

        report = await engine.run(config, bridge, midpoint=midpoint)
        await bridge.stop()
        product.server.close()
        return report, product, midpoint_calls

    report, product, midpoint_calls = asyncio.run(scenario())
    assert report.messages_sent == 8 and report.acked == 8
    assert report.webhook_retries == 1 and report.failed_webhooks == 0  # the 503 was posted again and accepted
    assert report.lost == 1  # lt-t1-1-1 never answered
    assert report.duplicated == 1  # lt-t1-2-0 answered twice (two keys)
    assert report.repeated_sends == 7  # every reply retried once with its key: dropped by the bridge
    assert report.bad_signatures == 0 and product.bad_signatures == 0
    assert report.events == ["killed nothing"] and midpoint_calls == [1]
    assert 0 < report.e2e_ms["p50"] < 500 and report.ack_ms["p99"] >= report.ack_ms["p50"]


def test_percentiles_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert engine.percentiles(values) == {"p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 100.0, "mean": 50.5}
    assert str(engine.percentiles([])["p50"]) == "nan"


def test_the_command_refreshes_the_planner_statistics_of_the_message_path(transactional_db, web_channel):
    """``manage.py loadtest`` runs VACUUM (ANALYZE) on the path's tables first: afterwards PostgreSQL's row
    estimate of the message table is its real size (it was never analysed, or analysed before these rows)."""
    from django.db import connection

    from bots.management.commands.loadtest import Command
    from bots.models import Conversation, Customer, Message

    customer = Customer.objects.create(channel=web_channel, external_id="vacuum-check")
    conversation = Conversation.objects.create(customer=customer, channel=web_channel)
    for i in range(37):
        Message.objects.create(
            conversation=conversation, channel=web_channel, direction="in", content=f"m{i}", external_id=f"v{i}"
        )

    def estimate() -> float:
        with connection.cursor() as cursor:
            cursor.execute("SELECT reltuples FROM pg_class WHERE relname = %s", [Message._meta.db_table])
            return cursor.fetchone()[0]

    assert estimate() != Message.objects.count()
    Command()._vacuum(quiet=True)
    assert estimate() == Message.objects.count() == 37
