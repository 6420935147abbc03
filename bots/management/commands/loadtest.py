"""Load and fault benchmark of the running product through the personal-WeChat bridge webhook.

    make run                                    # in another terminal (or PORT=8030 make run)
    .venv/bin/python manage.py loadtest --sessions 500 --messages 5 [--think-time 2.0] [--kill-worker]
        [--kill-mode child|worker] [--base-url http://127.0.0.1:8000] [--slug loadtest] [--no-vacuum] [--json]

The command starts a fake bridge on a free loopback port, creates or updates the bridge channel ``--slug`` (shared
secret, ``send_url`` pointing at the fake, rate limits off for this channel: ``rate_per_hour`` 0, no gap), then
drives ``--sessions`` concurrent customers (``bench/loadtest_engine.py``) and prints ack and end-to-end latency
percentiles, throughput and the lost / duplicated / failed counts, plus the outbox of the run from the database.

``--kill-worker`` SIGKILLs Celery worker processes once half of the messages are posted. The worker is found in
``/proc`` by its command line (like ``pgrep -f 'celery -A config worker .*-n kefu-main@'``; ``--worker-name`` for
another ``-n``): its main process is the one whose parent is not a worker itself (honcho's ``sh -c`` wrapper is
skipped), the pool processes are its children (``pgrep -P <main pid>``).

- ``--kill-mode child`` (default, safe under ``make run``): kill every pool process of that worker; the main
  process starts new ones at once and, with ``acks_late`` + ``task_reject_on_worker_lost``, re-queues the tasks
  they were running.
- ``--kill-mode worker``: kill the main process and its pool (``kill -9`` of the whole worker), then start a new
  worker (``celery -A config worker -Q inbound,outbound,default -c 2``, log in ``/tmp/kefu-loadtest-worker.log``;
  it keeps running after the command). The tasks it held come back through the sweepers. Not under honcho: honcho
  stops every process of ``make run`` when one of them dies.

Before the run (PostgreSQL only; ``--no-vacuum`` skips it) the message path's tables get ``VACUUM (ANALYZE)``: each
run adds thousands of rows and dead row versions, and where autovacuum is off (as in this project's CI database)
the planner's statistics go stale: after a few runs PostgreSQL ran about one sequential scan of the outbox per
message and its CPU per message grew by half. The command says so when it finds autovacuum off.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from bench import loadtest_engine as engine
from bots.models import Channel, Message, Outbox
from core import dbmaint

WORKER_QUEUES = "inbound,outbound,default"
SHELLS = frozenset({"sh", "bash", "dash", "zsh"})
DEFAULT_WORKER_NAME = "kefu-main"  # the Procfile's worker: celery -A config worker -Q inbound,… -n kefu-main@%h


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid → (parent pid, command line) of every process we can see (Linux /proc)."""
    table: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if not argv or os.path.basename(argv[0]) in SHELLS:
            continue  # "sh -c '.venv/bin/celery … worker'" as honcho starts it: not the worker itself
        cmdline = " ".join(argv).strip()
        fields = stat.rsplit(")", 1)[-1].split()
        if fields and fields[0] != "Z":
            table[int(entry.name)] = (int(fields[1]), cmdline)
    return table


def find_workers(name: str = DEFAULT_WORKER_NAME) -> dict[int, list[int]]:
    """Main pid → pool pids of the Celery workers named ``-n <name>@…`` that consume the inbound queue."""
    table = _proc_table()
    celery = {
        pid
        for pid, (_ppid, cmd) in table.items()
        if "celery" in cmd and " worker" in cmd and "inbound" in cmd and f"-n {name}@" in cmd and pid != os.getpid()
    }
    mains = [pid for pid in celery if table[pid][0] not in celery]
    return {main: sorted(pid for pid in celery if table[pid][0] == main) for main in mains}


def kill_children(name: str = DEFAULT_WORKER_NAME) -> list[str]:
    workers = find_workers(name)
    if not workers:
        return ["kill-worker: no Celery worker for the inbound queue found (is the product running?)"]
    events = []
    for main, children in workers.items():
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        events.append(f"SIGKILL pool processes {children} of worker {main}")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            fresh = [pid for pid in find_workers(name).get(main, []) if pid not in children]
            if len(fresh) >= len(children):
                events.append(f"worker {main} restarted its pool: {fresh}")
                break
            time.sleep(0.1)
        else:
            events.append(f"worker {main} did not restart its pool within 15 s")
    return events


def kill_whole_worker(name: str = DEFAULT_WORKER_NAME) -> list[str]:
    workers = find_workers(name)
    if not workers:
        return ["kill-worker: no Celery worker for the inbound queue found (is the product running?)"]
    main, children = next(iter(workers.items()))
    for pid in [main, *children]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    log = open("/tmp/kefu-loadtest-worker.log", "ab")  # noqa: SIM115 - handed to the child process
    replacement = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", WORKER_QUEUES, "-c", "2",
         "-n", f"{name}@%h", "-l", "warning"],
        cwd=settings.BASE_DIR, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "CELERY_DB_REUSE_MAX": os.environ.get("CELERY_DB_REUSE_MAX", "100")},
    )  # fmt: skip
    return [f"SIGKILL worker {main} and its pool {children}", f"started a new worker, pid {replacement.pid}"]


def _loop_factory():
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


class Command(BaseCommand):
    help = "Drive the running product through the bridge webhook with many concurrent customers and measure it."

    def add_arguments(self, parser):
        parser.add_argument("--sessions", type=int, default=500, help="concurrent customers (default 500)")
        parser.add_argument("--messages", type=int, default=5, help="messages per customer (default 5)")
        parser.add_argument("--think-time", type=float, default=2.0, help="mean seconds between turns (default 2)")
        parser.add_argument("--ramp-up", type=float, help="seconds over which sessions start (default: think time)")
        parser.add_argument("--kill-worker", action="store_true", help="SIGKILL Celery worker processes midway")
        parser.add_argument("--kill-mode", choices=["child", "worker"], default="child")
        parser.add_argument(
            "--worker-name", default=DEFAULT_WORKER_NAME, help="the worker to kill: its -n name before '@'"
        )
        parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="the running product")
        parser.add_argument("--slug", default="loadtest", help="bridge channel to create/update and use")
        parser.add_argument("--reply-timeout", type=float, default=15.0, help="seconds a turn waits for its reply")
        parser.add_argument("--drain-timeout", type=float, default=60.0, help="seconds to wait for the last replies")
        parser.add_argument(
            "--webhook-retries", type=int, default=3, help="retries of a webhook answered 5xx (as a bridge would)"
        )
        parser.add_argument(
            "--warmup",
            type=int,
            default=16,
            help="customers sending 2 messages before the measured run (not counted): every worker process loads "
            "its models on its first message; 0 = none",
        )
        parser.add_argument(
            "--no-vacuum", action="store_true", help="skip VACUUM (ANALYZE) of the message path's tables before the run"
        )
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args, **options):
        base_url = options["base_url"].rstrip("/")
        host = base_url.split("//", 1)[-1].split("/", 1)[0].split(":")[0]
        if host not in ("127.0.0.1", "localhost", "::1", "[::1]"):
            raise CommandError("--base-url must be on loopback (127.0.0.1 / localhost)")
        self._check_up(base_url)
        if not options["no_vacuum"]:
            self._vacuum(quiet=options["json"])
        sock = engine.bind_loopback()
        port = sock.getsockname()[1]
        channel, secret = self._channel(options["slug"], f"http://127.0.0.1:{port}/send")
        started_at = timezone.now()
        config = engine.Config(
            base_url=base_url,
            slug=channel.slug,
            secret=secret,
            sessions=options["sessions"],
            messages=options["messages"],
            think_time=options["think_time"],
            ramp_up=options["ramp_up"],
            reply_timeout=options["reply_timeout"],
            drain_timeout=options["drain_timeout"],
            webhook_retries=options["webhook_retries"],
            seed=options["seed"],
        )
        killer = None
        if options["kill_worker"]:
            kill = kill_children if options["kill_mode"] == "child" else kill_whole_worker
            name = options["worker_name"]

            async def killer() -> list[str]:
                return await asyncio.get_running_loop().run_in_executor(None, kill, name)

        progress = None if options["json"] else (lambda line: self.stderr.write(line))
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:  # uvloop: less of the 2 cores for the load
            report = runner.run(self._run(config, sock, killer, progress, warmup=options["warmup"]))
        outbox = self._outbox_summary(channel, started_at)
        if options["json"]:
            self.stdout.write(json.dumps({**report.as_dict(), "outbox": outbox}, ensure_ascii=False, indent=2))
        else:
            self._print(report, outbox, options)

    @staticmethod
    async def _run(config, sock, killer, progress, *, warmup: int = 0) -> engine.Report:
        bridge = engine.FakeBridge(config.secret)
        await bridge.start(sock)
        try:
            if warmup > 0:
                warm = dataclasses.replace(
                    config, sessions=warmup, messages=2, think_time=0.2, ramp_up=0.5, drain_timeout=30.0,
                    run_id=f"warm{int(time.time())}",
                )  # fmt: skip
                await engine.run(warm, bridge)
                bridge.repeated_sends = bridge.bad_signatures = 0
            return await engine.run(config, bridge, midpoint=killer, progress=progress)
        finally:
            await bridge.stop()

    @staticmethod
    def _check_up(base_url: str) -> None:
        try:
            with urllib.request.urlopen(base_url + "/healthz", timeout=5) as response:  # noqa: S310 - loopback
                response.read()
        except urllib.error.HTTPError:
            pass  # 503: something is degraded, but the server answers
        except OSError as exc:
            raise CommandError(f"the product does not answer at {base_url} ({exc}); start it with `make run`") from exc

    def _vacuum(self, *, quiet: bool) -> None:
        if connection.vendor != "postgresql":
            return
        seconds = dbmaint.vacuum_analyze(dbmaint.hot_tables())
        if not quiet:
            note = (
                ""
                if dbmaint.autovacuum_on()
                else " (autovacuum is off on this server: statistics go stale between runs)"
            )
            self.stderr.write(f"VACUUM (ANALYZE) of the message path's tables: {seconds:.1f} s{note}")

    @staticmethod
    def _channel(slug: str, send_url: str) -> tuple[Channel, str]:
        """The loadtest bridge channel, created or updated: its secret is kept, the fake's URL and "no limits"
        are written on every run (the running product reads channel settings on each request and send)."""
        channel = Channel.objects.filter(slug=slug).first()
        if channel is not None and channel.kind != Channel.Kind.BRIDGE:
            raise CommandError(f"channel {slug!r} exists and is not a bridge channel")
        stored = json.loads(channel.secrets) if channel is not None and channel.secrets else {}
        secret = stored.get("secret") or secrets.token_urlsafe(24)
        limits_off = {"rate_per_hour": 0, "min_gap_seconds": 0, "max_gap_seconds": 0}
        if channel is None:
            channel = Channel(kind=Channel.Kind.BRIDGE, slug=slug, name=f"Load test ({slug})")
        channel.settings = {**(channel.settings or {}), "send_url": send_url, "timeout": 10, **limits_off}
        channel.secrets = json.dumps({**stored, "secret": secret})
        channel.enabled = True
        channel.save()
        return channel, secret

    @staticmethod
    def _outbox_summary(channel: Channel, since) -> dict:
        rows = Outbox.objects.filter(channel=channel, created_at__gte=since)
        by_status = dict(rows.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
        twice = (
            Message.objects.filter(channel=channel, direction=Message.Direction.OUT, created_at__gte=since)
            .exclude(reply_to=None)
            .values("reply_to")
            .annotate(n=Count("id"))
            .filter(n__gt=1)
            .count()
        )
        unprocessed = Message.objects.filter(
            channel=channel, direction=Message.Direction.IN, status=Message.Status.RECEIVED, created_at__gte=since
        ).count()
        retried = rows.filter(attempts__gt=1).count()
        return {"by_status": by_status, "answered_twice": twice, "unprocessed": unprocessed, "retried": retried}

    def _print(self, report: engine.Report, outbox: dict, options: dict) -> None:
        w = self.stdout.write
        kill = f", kill-worker ({options['kill_mode']})" if options["kill_worker"] else ""
        w(
            f"\nloadtest: {report.sessions} sessions × {options['messages']} messages, think time "
            f"{options['think_time']} s{kill}, against {options['base_url']} (/bridge/{options['slug']}/)"
        )
        w(f"  duration            {report.duration:.1f} s")
        w(f"  posted / acked      {report.messages_sent} / {report.acked}")
        w(f"  replies             {report.replies}")
        w(f"  throughput          {report.throughput_msgs} messages/s, {report.throughput_replies} replies/s")
        for name, values in (("webhook ack", report.ack_ms), ("end-to-end", report.e2e_ms)):
            w(
                f"  {name:<18}  P50 {values['p50']} ms  P95 {values['p95']} ms  P99 {values['p99']} ms  "
                f"max {values['max']} ms"
            )
        w(f"  lost                {report.lost}")
        w(f"  duplicated          {report.duplicated}  (answered twice in the database: {outbox['answered_twice']})")
        w(f"  failed webhooks     {report.failed_webhooks}  (not 2xx after {options['webhook_retries']} retries)")
        w(f"  webhook retries     {report.webhook_retries}  (a 5xx or connection error, posted again)")
        w(f"  repeated sends      {report.repeated_sends}  (same idempotency key again, dropped by the bridge)")
        w(f"  late replies        {report.late}  (after {options['reply_timeout']} s, not lost)")
        if report.bad_signatures:
            w(f"  bad signatures      {report.bad_signatures}")
        w(f"  outbox              {outbox['by_status']}  retried rows: {outbox['retried']}")
        w(f"  unprocessed inbound {outbox['unprocessed']}")
        if report.slowest:
            w("  slowest             " + ", ".join(f"{ms:.0f} ms at {at}" for at, ms in report.slowest))
        for event in report.events:
            w(f"  event               {event}")
