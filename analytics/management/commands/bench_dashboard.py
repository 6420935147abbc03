"""Benchmark the dashboard API (and, with ``--mining``, a mining run end to end) on the configured database.

    .venv/bin/python manage.py analytics_generate --messages 1000000 --days 90   # a scratch database!
    .venv/bin/python manage.py bench_dashboard --repeat 5 [--detail] [--mining] [--clusters]

Each case is ``GET /api/v1/analytics/dashboard/`` through the API view (DRF authentication and permissions,
filter validation, every SQL query, JSON rendering; as an unsaved superuser, so nothing is written), timed ``--repeat`` times after one warm-up request. The goal is
under 1 s per request. ``--detail`` times each panel's query separately. ``--mining`` runs the Apriori mining
(reading the conversations' topics with SQL, mining, saving the rules) over ``--mining-days``; ``--clusters`` the
unanswered-question clustering.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import time

from django.core.management.base import BaseCommand

GOAL_S = 1.0


class Command(BaseCommand):
    help = "Time the dashboard API (goal: under 1 s) and optionally a mining run."

    def add_arguments(self, parser):
        parser.add_argument("--repeat", type=int, default=5)
        parser.add_argument("--detail", action="store_true", help="time each panel's query too")
        parser.add_argument("--mining", action="store_true", help="time an Apriori mining run end to end")
        parser.add_argument("--mining-days", type=int, default=90)
        parser.add_argument("--min-support", type=float, default=0.005)
        parser.add_argument("--min-confidence", type=float, default=0.3)
        parser.add_argument("--clusters", action="store_true", help="time an unanswered-question clustering run")

    def handle(self, *args, **options):
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django.utils import timezone
        from rest_framework.test import APIRequestFactory, force_authenticate

        from analytics import selectors
        from analytics.api import DashboardView
        from analytics.models import DailyStats
        from bots.models import Message

        span = DailyStats.objects.order_by("day").values_list("day", flat=True)
        if not span.exists():
            self.stderr.write("No rollups: run analytics_generate (or analytics_rollup --all) first.")
            return
        first, last = span.first(), span.last()
        today = timezone.localdate()
        channel = DailyStats.objects.values_list("channel_id", flat=True).first()
        group = DailyStats.objects.exclude(group_id=0).values_list("group_id", flat=True).first()
        self.stdout.write(
            f"database {connection.settings_dict['NAME']}: {Message.objects.count():,} messages, "
            f"rollups {first} … {last} ({DailyStats.objects.count():,} rows)"
        )
        cases = [
            ("last 7 days", {"from": str(today - dt.timedelta(days=6)), "to": str(today)}),
            ("last 30 days (the default)", {}),
            ("all days", {"from": str(first), "to": str(last)}),
            ("all days, one channel", {"from": str(first), "to": str(last), "channel": channel}),
            ("all days, one group", {"from": str(first), "to": str(last), "group": group}),
        ]
        # an unsaved superuser: the benchmark writes nothing (no user, no session) to the database it measures
        user = get_user_model()(username="bench-dashboard", is_superuser=True, is_staff=True, is_active=True)
        factory = APIRequestFactory()
        view = DashboardView.as_view()

        def get(params):
            request = factory.get("/api/v1/analytics/dashboard/", params)
            force_authenticate(request, user=user)
            response = view(request)
            response.render()
            return response

        worst = 0.0
        for label, params in cases:
            params = {k: v for k, v in params.items() if v is not None}
            response = get(params)  # warm-up
            assert response.status_code == 200, response.content[:300]
            timings = []
            for _ in range(options["repeat"]):
                started = time.perf_counter()
                response = get(params)
                timings.append(time.perf_counter() - started)
                assert response.status_code == 200
            worst = max(worst, max(timings))
            data = json.loads(response.content)
            self.stdout.write(
                f"  {label:<28} median {statistics.median(timings) * 1000:6.0f} ms  max {max(timings) * 1000:6.0f} ms"
                f"  ({data['summary']['conversations']:,} conversations, "
                f"{data['latency']['n']:,} decisions, {len(response.content) / 1024:.0f} KiB)"
            )
        verdict = "OK" if worst < GOAL_S else "TOO SLOW"
        self.stdout.write(f"slowest request {worst * 1000:.0f} ms (goal < {GOAL_S * 1000:.0f} ms): {verdict}")

        if options["detail"]:
            f = selectors.Filters(first=first, last=last)
            self.stdout.write("per panel, all days:")
            panels = {"summary": selectors.summary, "latency": selectors.latency}
            panels.update({name: (lambda f, n=name: selectors.table_rows(n, f)) for name in selectors.TABLES})
            for name, fn in panels.items():
                started = time.perf_counter()
                fn(f)
                self.stdout.write(f"  {name:<16} {(time.perf_counter() - started) * 1000:6.1f} ms")

        if options["mining"]:
            self._mining(options)
        if options["clusters"]:
            self._clusters(options)

    def _mining(self, options):
        from knowledge.models import AssociationRule
        from knowledge.services import mining

        run = mining.mining_run_start(
            kind="rules",
            days=options["mining_days"],
            min_support=options["min_support"],
            min_confidence=options["min_confidence"],
            max_length=2,
        )
        started = time.perf_counter()
        run = mining.mining_run_execute(run_id=run.id)
        elapsed = time.perf_counter() - started
        s = run.stats
        self.stdout.write(
            f"mining ({run.status}): {s.get('conversations', 0):,} conversations in {elapsed:.1f} s "
            f"(read {s.get('read_s')} s, mine {s.get('mine_s')} s, save {s.get('save_s')} s); "
            f"{s.get('itemsets', 0)} itemsets, {s.get('rules', 0)} rules {run.error}"
        )
        for rule in AssociationRule.objects.filter(run=run).order_by("-lift")[:3]:
            self.stdout.write(f"    {mining.rule_describe(rule)}")

    def _clusters(self, options):
        from knowledge.models import UnansweredCluster
        from knowledge.services import mining

        run = mining.mining_run_start(kind="clusters", days=30, max_questions=4000)
        started = time.perf_counter()
        run = mining.mining_run_execute(run_id=run.id)
        s = run.stats
        self.stdout.write(
            f"clustering ({run.status}): {s.get('questions', 0):,} questions → {s.get('groups', 0)} groups in "
            f"{time.perf_counter() - started:.1f} s {run.error}"
        )
        for cluster in UnansweredCluster.objects.filter(run=run).order_by("-size")[:5]:
            self.stdout.write(f"    {cluster.size:5d}  {cluster.label}  ({'、'.join(cluster.keywords)})")
