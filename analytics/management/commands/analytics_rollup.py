"""Rebuild the dashboard's daily rollups: the last N days (default: today and yesterday, like beat), a range, or
every day with data (``--all``, after installing analytics or importing history)."""

from __future__ import annotations

import datetime as dt
import time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone


class Command(BaseCommand):
    help = "Rebuild the analytics daily rollups."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=2, help="today and the days before it (default 2)")
        parser.add_argument("--from", dest="first", type=dt.date.fromisoformat, help="first day, YYYY-MM-DD")
        parser.add_argument("--to", dest="last", type=dt.date.fromisoformat, help="last day (default today)")
        parser.add_argument("--all", action="store_true", help="every day with conversations or messages")

    def handle(self, *args, **options):
        from analytics import services

        started = time.perf_counter()

        def progress(day, result):
            if options["verbosity"] > 1:
                self.stdout.write(f"  {day}: {result.stats_rows} rows, {result.topic_rows} topics")

        if options["all"]:
            results = services.rollup_all(progress=progress)
        else:
            last = options["last"] or timezone.localdate()
            first = options["first"] or last - dt.timedelta(days=max(options["days"], 1) - 1)
            if first > last:
                raise CommandError("--from is after --to")
            results = services.rollup_days(first=first, last=last, progress=progress)
        self.stdout.write(f"rolled up {len(results)} days in {time.perf_counter() - started:.1f} s")
