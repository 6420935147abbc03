"""Benchmark the whole RFM recompute (SQL aggregate, scoring, upsert, Redis sorted set) on synthetic shop data.

Generates ``--customers`` channel customers (each its own person) with ``--orders`` orders in a throwaway
channel ``bench-rfm`` (``COPY``), times ``routing.services.rfm_recompute`` ``--repeat`` times and 10,000
routing-time lookups, then deletes every generated row (``--keep`` keeps them) and recomputes once more so
the database and ``kefu:rfm`` match the remaining real data.

It writes to the configured database and Redis, so point it at throwaway ones::

    createdb -h 127.0.0.1 -U postgres kefu_bench
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/kefu_bench REDIS_URL=redis://127.0.0.1:6379/10
    .venv/bin/python manage.py migrate -v 0
    .venv/bin/python bench/bench_rfm_recompute.py                     # 100,000 customers, 1,000,000 orders
    .venv/bin/python bench/bench_rfm_recompute.py --customers 20000 --orders 200000 --repeat 3

Orders: ~15 % of customers never ordered; the rest get a Zipf-like share of the orders (a few heavy buyers,
many one-time ones), paid in the last two years, long-tailed amounts, ~8 % refunded or cancelled.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

SLUG = "bench-rfm"


def generate(n_customers: int, n_orders: int, seed: int) -> None:
    from django.db import connection, transaction
    from django.utils import timezone

    from bots.models import Channel

    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    with transaction.atomic():
        channel = Channel.objects.create(kind=Channel.Kind.WEB, slug=SLUG, name="RFM benchmark (throwaway)")
        with connection.cursor() as cur:
            cur.execute(
                "INSERT INTO bots_customer (channel_id, external_id, nickname, created_at, updated_at) "
                "SELECT %s, 'bench-' || g, '', now(), now() FROM generate_series(1, %s) g",
                [channel.id, n_customers],
            )
            cur.execute("SELECT id FROM bots_customer WHERE channel_id = %s ORDER BY id", [channel.id])
            customer_ids = np.array([r[0] for r in cur.fetchall()], dtype=np.int64)
            cur.execute(
                "INSERT INTO routing_person (name, note, created_at, updated_at) "
                "SELECT '', '', now(), now() FROM generate_series(1, %s) RETURNING id",
                [n_customers],
            )
            person_ids = np.sort(np.array([r[0] for r in cur.fetchall()], dtype=np.int64))
            with cur.cursor.copy("COPY routing_customerlink (customer_id, person_id, linked_at) FROM STDIN") as copy:
                now = timezone.now()
                for c, p in zip(customer_ids.tolist(), person_ids.tolist(), strict=True):
                    copy.write_row((c, p, now))
            # who buys: 85 % of customers, heavy-tailed weights
            buyers = rng.random(n_customers) < 0.85
            weights = np.where(buyers, rng.pareto(1.5, n_customers) + 1.0, 0.0)
            owner = rng.choice(n_customers, size=n_orders, p=weights / weights.sum())
            days_ago = rng.exponential(120, n_orders).clip(0, 730)
            paid_at = [now - dt.timedelta(seconds=int(d * 86400)) for d in days_ago]
            amounts = np.round(rng.lognormal(4.8, 0.9, n_orders), 2)
            status = rng.choice(
                ["completed", "paid", "shipped", "refunded", "cancelled"], size=n_orders, p=[0.62, 0.2, 0.1, 0.05, 0.03]
            )
            items = json.dumps([{"sku": "BENCH", "qty": 1}])
            columns = "number, customer_id, person_id, amount, paid_at, items, status, created_at, updated_at"
            with cur.cursor.copy(f"COPY routing_order ({columns}) FROM STDIN") as copy:
                for i in range(n_orders):
                    k = owner[i]
                    copy.write_row(
                        (
                            f"BENCH-{i}",
                            int(customer_ids[k]),
                            int(person_ids[k]),
                            float(amounts[i]),
                            paid_at[i],
                            items,
                            str(status[i]),
                            now,
                            now,
                        )
                    )
            cur.execute("ANALYZE routing_order")
            cur.execute("ANALYZE routing_person")
    print(
        f"generated {n_customers:,} customers / people and {n_orders:,} orders "
        f"({int(buyers.sum()):,} buyers) in {time.perf_counter() - started:.1f} s"
    )


def cleanup() -> None:
    from django.db import connection, transaction

    from bots.models import Channel

    started = time.perf_counter()
    channel = Channel.objects.filter(slug=SLUG).first()
    if channel is None:
        return
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE bench_people ON COMMIT DROP AS SELECT l.person_id FROM routing_customerlink l "
            "JOIN bots_customer c ON c.id = l.customer_id WHERE c.channel_id = %s",
            [channel.id],
        )
        cur.execute(
            "DELETE FROM routing_order WHERE customer_id IN (SELECT id FROM bots_customer WHERE channel_id = %s)",
            [channel.id],
        )
        cur.execute("DELETE FROM routing_rfmscore WHERE person_id IN (SELECT person_id FROM bench_people)")
        cur.execute(
            "DELETE FROM routing_customerlink WHERE customer_id IN (SELECT id FROM bots_customer WHERE channel_id = %s)",
            [channel.id],
        )
        cur.execute(
            "DELETE FROM routing_person p WHERE p.id IN (SELECT person_id FROM bench_people) "
            "AND NOT EXISTS (SELECT 1 FROM routing_customerlink l WHERE l.person_id = p.id) "
            "AND NOT EXISTS (SELECT 1 FROM routing_order o WHERE o.person_id = p.id)"
        )
        cur.execute("DELETE FROM bots_customer WHERE channel_id = %s", [channel.id])
        cur.execute("DELETE FROM bots_channel WHERE id = %s", [channel.id])
    print(f"deleted the generated rows in {time.perf_counter() - started:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the generated rows")
    parser.add_argument("--cleanup-only", action="store_true", help="only delete rows left by an earlier --keep run")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.db.models import Count

    from routing.models import RfmScore
    from routing.services import rfm

    db = settings.DATABASES["default"]
    print(f"database {db['NAME']} on {db.get('HOST') or 'localhost'}, Redis {settings.REDIS_URL}")
    cleanup()
    if args.cleanup_only:
        rfm.rfm_recompute()
        return
    generate(args.customers, args.orders, args.seed)
    try:
        runs = []
        for i in range(args.repeat):
            run = rfm.rfm_recompute(progress=(lambda line: print("  " + line)) if i == 0 else None)
            runs.append(run)
            parts = ", ".join(f"{k} {v:.2f} s" for k, v in run.timings.items())
            print(
                f"run {i + 1}: {run.people:,} people ({run.with_orders:,} with orders) in {run.seconds:.2f} s ({parts})"
            )
        seconds = [r.seconds for r in runs]
        print(f"recompute: median {statistics.median(seconds):.2f} s, best {min(seconds):.2f} s (goal: < 60 s)")

        person_ids = list(RfmScore.objects.values_list("person_id", flat=True)[:10_000])
        started = time.perf_counter()
        sources = [rfm.rfm_lookup(person_id=p).source for p in person_ids]
        per_lookup = (time.perf_counter() - started) / max(1, len(person_ids)) * 1e6
        print(f"lookups: {len(person_ids):,} rfm_lookup calls, {per_lookup:.0f} µs each, sources {set(sources)}")
        tiers = dict(RfmScore.objects.order_by().values_list("tier").annotate(n=Count("pk")))
        print("tiers: " + ", ".join(f"{t} {tiers.get(t, 0):,}" for t in ("vip", "high", "normal", "low")))
    finally:
        if not args.keep:
            cleanup()
            rfm.rfm_recompute()


if __name__ == "__main__":
    main()
