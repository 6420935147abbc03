"""CPU, SQL queries and Redis commands per message for each stage of the bridge message path, in one process:

    REDIS_URL=redis://127.0.0.1:6379/13 .venv/bin/python bench/profile_message_path.py [--messages 200] [--cprofile STAGE]

Stages: ``webhook`` (Django's handler through every middleware: verify, store, queue — the broker publish
included), ``process`` (``bots.tasks.process_message`` run in place: decide, reply, and, when the send is inline,
the send), ``send`` (``bots.tasks.send_outbox`` for replies that were queued instead). A fake bridge answers in a
thread of this process (its CPU is not counted). Celery tasks are called directly (``task.run``), so the worker's
own per-task overhead (broker round trips, acks) is not in these figures; ``bench/cpu_by_process.py`` around a
``manage.py loadtest`` run gives the whole picture. It writes to the configured database (a ``profile-<n>`` bridge
channel and its customers) and drains the queues it filled, so point it at a development database and a Redis
database no running worker consumes.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

import django  # noqa: E402

django.setup()

import redis  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from bots.channels.bridge import signed_headers  # noqa: E402
from bots.models import Channel, Outbox  # noqa: E402

REDIS_CALLS = [0]
_execute = redis.Redis.execute_command
_pipe_execute = redis.client.Pipeline.execute


def _counted(self, *args, **kwargs):
    REDIS_CALLS[0] += 1
    return _execute(self, *args, **kwargs)


def _counted_pipe(self, *args, **kwargs):
    REDIS_CALLS[0] += 1  # one round trip for the whole pipeline
    return _pipe_execute(self, *args, **kwargs)


redis.Redis.execute_command = _counted
redis.client.Pipeline.execute = _counted_pipe


class _Bridge(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        data = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class Stage:
    def __init__(self, name: str, profile: bool) -> None:
        self.name, self.cpu, self.queries, self.redis, self.count = name, 0.0, 0, 0, 0
        self.profiler = cProfile.Profile(time.process_time) if profile else None

    def __enter__(self):
        self._capture = CaptureQueriesContext(connection)
        self._capture.__enter__()
        self._redis = REDIS_CALLS[0]
        if self.profiler:
            self.profiler.enable()
        self._cpu = time.process_time()
        return self

    def __exit__(self, *exc):
        self.cpu += time.process_time() - self._cpu
        if self.profiler:
            self.profiler.disable()
        self._capture.__exit__(*exc)
        self.queries += len(self._capture.captured_queries)
        self.redis += REDIS_CALLS[0] - self._redis
        self.count += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--cprofile", choices=["webhook", "process", "send"], help="print a cProfile of one stage")
    parser.add_argument("--show-queries", action="store_true", help="print the SQL of the last message")
    args = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Bridge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    slug = f"profile-{os.getpid()}"
    secret = "profile-secret"
    channel = Channel.objects.create(
        kind=Channel.Kind.BRIDGE,
        slug=slug,
        name=slug,
        settings={
            "send_url": f"http://127.0.0.1:{server.server_port}/send",
            "rate_per_hour": 0,
            "min_gap_seconds": 0,
            "max_gap_seconds": 0,
        },
        secrets=json.dumps({"secret": secret}),
    )
    from bots.models import Message
    from bots.tasks import process_message, send_outbox

    stages = {name: Stage(name, args.cprofile == name) for name in ("webhook", "process", "send")}
    client = Client(HTTP_HOST="127.0.0.1")
    connection.force_debug_cursor = True
    try:
        for i in range(args.messages + 5):
            warm = i < 5
            body = json.dumps(
                {"id": f"p{i}", "from": f"wxid_profile_{i % 50}", "type": "text", "text": "什么时候发货", "ts": 0}
            ).encode()
            headers = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in signed_headers(body, secret).items()}
            stage = stages["webhook"]
            with stage:
                response = client.post(f"/bridge/{slug}/", body, content_type="application/json", **headers)
            assert response.status_code == 200, response.content
            message_id = Message.objects.filter(channel=channel, external_id=f"p{i}").values_list("id", flat=True)[0]
            with stages["process"]:
                process_message.run(message_id)
            pending = list(
                Outbox.objects.filter(channel=channel, status=Outbox.Status.PENDING).values_list("id", flat=True)
            )
            for outbox_id in pending:
                with stages["send"]:
                    send_outbox.run(outbox_id)
            if warm:
                for s in stages.values():
                    s.cpu, s.queries, s.redis, s.count = 0.0, 0, 0, 0
                    if s.profiler:
                        s.profiler = cProfile.Profile(time.process_time)
        if args.show_queries:
            body = json.dumps(
                {"id": "last", "from": "wxid_profile_0", "type": "text", "text": "你好", "ts": 0}
            ).encode()
            headers = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in signed_headers(body, secret).items()}
            with CaptureQueriesContext(connection) as queries:
                client.post(f"/bridge/{slug}/", body, content_type="application/json", **headers)
            message_id = Message.objects.get(channel=channel, external_id="last").id
            with CaptureQueriesContext(connection) as queries2:
                process_message.run(message_id)
            for title, captured in (("webhook", queries), ("process_message", queries2)):
                print(f"--- SQL of {title}")
                for q in captured.captured_queries:
                    print("  " + q["sql"][:220])
    finally:
        server.shutdown()
    print(f"{args.messages} messages through /bridge/{slug}/ (per message; send = rows left for send_outbox):")
    for s in stages.values():
        n = max(args.messages, 1)
        print(
            f"  {s.name:<8} {s.cpu * 1000 / n:7.2f} ms CPU  {s.queries / n:5.1f} SQL  {s.redis / n:5.1f} Redis "
            f"round trips  ({s.count} calls)"
        )
    sent = Outbox.objects.filter(channel=channel, status=Outbox.Status.SENT).count()
    print(f"  outbox rows sent: {sent}")
    for s in stages.values():
        for sort in ("cumulative", "tottime"):
            if s.profiler:
                pstats.Stats(s.profiler).sort_stats(sort).print_stats(40)


if __name__ == "__main__":
    main()
