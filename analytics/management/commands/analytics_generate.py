"""Generate a synthetic shop history (``analytics.generate``) and roll it up: for benchmarks and demos.

    createdb -h 127.0.0.1 -U postgres kefu_bench
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/kefu_bench
    .venv/bin/python manage.py migrate -v 0
    .venv/bin/python manage.py analytics_generate --messages 1000000 --days 90

It writes real rows (customers, conversations, messages, tickets, orders): never point it at a database you care
about. ``--no-rollup`` skips the rollups and the RFM recompute."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Generate a synthetic shop history (messages, tickets, orders) in a scratch database, then roll it up."

    def add_arguments(self, parser):
        parser.add_argument("--messages", type=int, default=1_000_000)
        parser.add_argument("--days", type=int, default=90)
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--prefix", default="gen", help="slug prefix of the generated channels, groups, agents")
        parser.add_argument("--no-rollup", action="store_true")
        parser.add_argument("--yes", action="store_true", help="do not ask before writing")

    def handle(self, *args, **options):
        from django.db import connection

        from analytics import generate, services

        name = connection.settings_dict["NAME"]
        if not options["yes"] and not str(name).startswith(("kefu_bench", "test_")):
            raise CommandError(
                f"This writes {options['messages']:,} messages into database {name!r}. Use a scratch database "
                "(kefu_bench…) or pass --yes."
            )
        if options["messages"] < 1 or not 1 <= options["days"] <= 3650:
            raise CommandError("--messages must be positive and --days between 1 and 3650")
        result = generate.generate(
            messages=options["messages"],
            days=options["days"],
            seed=options["seed"],
            prefix=options["prefix"],
            progress=lambda line: self.stdout.write(f"  {line}"),
        )
        self.stdout.write(
            "generated in {seconds} s: {customers:,} customers, {conversations:,} conversations, {messages:,} "
            "messages, {tickets:,} tickets, {events:,} ticket events, {orders:,} orders".format(**result)
        )
        if options["no_rollup"]:
            return
        from routing import services as routing

        started = time.perf_counter()
        routing.rfm_recompute()
        self.stdout.write(f"RFM recomputed in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        results = services.rollup_all()
        self.stdout.write(f"rolled up {len(results)} days in {time.perf_counter() - started:.1f} s")
