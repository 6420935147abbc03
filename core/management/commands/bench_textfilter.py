"""``manage.py bench_textfilter``: how fast one process scans messages against a large sensitive-word list.

Builds one ``core.textfilter.Matcher`` from ``--words`` synthetic words (Chinese words of 2-4 characters, some
Latin/digit words; ``--pinyin`` adds pinyin initials), then scans ``--messages`` synthetic customer messages
(10-80 characters; about 5 % contain a word, half of those with separators inside) one by one in one thread
(``--pin-cpu N`` pins it to one CPU), and prints words, build seconds, messages per second (wall clock, and per CPU second, which other load on the machine does not
distort) and P50/P99 microseconds per message (wall clock). No database:
this is the matcher a worker holds after ``core.sensitive`` loaded the lists; the per-message overhead of the
service (one dict lookup, one Redis read per second) is not in the figure.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import time

from django.core.management.base import BaseCommand, CommandError

from core.textfilter import Matcher, Word

ACTIONS = ("flag", "mask", "block", "handoff")
SEPARATORS = ("*", " ", "😀", "丶", "·", "\u200b")


def _hanzi(rng: random.Random) -> str:
    return chr(rng.randint(0x4E00, 0x9FA5))


def make_words(count: int, rng: random.Random) -> list[Word]:
    words: dict[str, Word] = {}
    latin = "abcdefghijklmnopqrstuvwxyz0123456789"
    while len(words) < count:
        if rng.random() < 0.1:
            text = "".join(rng.choice(latin) for _ in range(rng.randint(3, 6)))
        else:
            text = "".join(_hanzi(rng) for _ in range(rng.randint(2, 4)))
        words.setdefault(text, Word(text, f"c{rng.randint(1, 8)}", rng.choice(ACTIONS)))
    return list(words.values())


def make_messages(count: int, words: list[Word], rng: random.Random) -> list[str]:
    out = []
    for _ in range(count):
        chars = [_hanzi(rng) if rng.random() < 0.85 else rng.choice("，。！？ 0123456789abc") for _ in range(80)]
        text = "".join(chars[: rng.randint(10, 80)])
        if rng.random() < 0.05:
            word = rng.choice(words).text
            if rng.random() < 0.5:
                word = rng.choice(SEPARATORS).join(word)
            at = rng.randint(0, len(text))
            text = text[:at] + word + text[at:]
        out.append(text)
    return out


class Command(BaseCommand):
    help = "Benchmark the sensitive-word matcher: build time and messages per second on one core."

    def add_arguments(self, parser):
        parser.add_argument("--words", type=int, default=10_000, help="words in the list (default 10000)")
        parser.add_argument("--messages", type=int, default=20_000, help="messages to scan (default 20000)")
        parser.add_argument("--pinyin", action="store_true", help="also match pinyin initials")
        parser.add_argument("--seed", type=int, default=8, help="random seed")
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument("--pin-cpu", type=int, default=None, help="run on this CPU only (Linux)")

    def handle(self, *args, **options):
        if options["words"] < 1 or options["messages"] < 1:
            raise CommandError("--words and --messages must be at least 1")
        core = options["pin_cpu"]
        if core is not None:
            os.sched_setaffinity(0, {core})
        rng = random.Random(options["seed"])
        words = make_words(options["words"], rng)
        messages = make_messages(options["messages"], words, rng)

        started = time.perf_counter()
        matcher = Matcher.build(words, pinyin_initials=options["pinyin"])
        build_seconds = time.perf_counter() - started

        for text in messages[:2000]:  # warm-up: fills the shared normalisation table
            matcher.scan(text)
        timings = []
        hits = 0
        clock = time.perf_counter_ns
        started, cpu_started = time.perf_counter(), time.process_time()
        for text in messages:
            t0 = clock()
            result = matcher.scan(text)
            timings.append(clock() - t0)
            hits += bool(result.hits)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        timings.sort()
        q = statistics.quantiles(timings, n=100, method="inclusive") if len(timings) > 1 else timings * 99
        report = {
            "words": len(words),
            "patterns": matcher.pattern_count,
            "pinyin_initials": options["pinyin"],
            "build_seconds": round(build_seconds, 3),
            "messages": len(messages),
            "messages_with_hits": hits,
            "messages_per_second": round(len(messages) / elapsed),
            "messages_per_cpu_second": round(len(messages) / cpu) if cpu > 0 else None,
            "p50_us": round(q[49] / 1000, 1),
            "p99_us": round(q[98] / 1000, 1),
            "mean_chars": round(sum(map(len, messages)) / len(messages), 1),
            "cpu_core": core,
        }
        if options["json"]:
            self.stdout.write(json.dumps(report))
            return
        self.stdout.write(
            f"words {report['words']} ({report['patterns']} patterns), build {report['build_seconds']} s; "
            f"{report['messages']} messages (mean {report['mean_chars']} chars, {hits} with hits): "
            f"{report['messages_per_second']} messages/s on one core "
            f"({report['messages_per_cpu_second']} per CPU second), "
            f"P50 {report['p50_us']} µs, P99 {report['p99_us']} µs per message"
        )
