"""Per-account limits enforced in the real Redis, with several senders at once (threads and processes, each
with its own connection): the Lua script and the pure maths agree, and no two senders share a slot."""

from __future__ import annotations

import multiprocessing
import random
import threading

import pytest
import redis
from django.conf import settings

from bots import ratelimit
from bots.ratelimit import AccountLimits, limits_for, slot_acquire
from bots.ratelimit_math import HOUR, REASON_MIN_GAP, REASON_RATE_LIMIT, SlotState, schedule_slot

NOW = 1_750_000_000.0


def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)


def test_lua_script_matches_the_pure_maths(redis_clean):
    rng = random.Random(7)
    state = SlotState()
    limits = AccountLimits(rate_per_hour=4, min_gap=0, max_gap=0)
    now = NOW
    for i in range(60):
        now += rng.uniform(0, 400)
        expected, state = schedule_slot(state, now=round(now, 4), limit=4, window=HOUR)
        got = slot_acquire(channel_slug="eq", member=f"m{i}", limits=limits, now=round(now, 4))
        assert got.allowed == expected.allowed
        assert got.at == pytest.approx(expected.at, abs=1e-3)
        assert got.reason == expected.reason


def test_the_same_message_keeps_its_slot(redis_clean):
    limits = AccountLimits(rate_per_hour=1)
    first = slot_acquire(channel_slug="idem", member="a", limits=limits, now=NOW)
    again = slot_acquire(channel_slug="idem", member="a", limits=limits, now=NOW + 5)
    other = slot_acquire(channel_slug="idem", member="b", limits=limits, now=NOW + 5)
    assert first.allowed and again.allowed  # a retry of a sent message uses no new quota
    assert not other.allowed and other.at == pytest.approx(NOW + HOUR)
    assert other.reason == REASON_RATE_LIMIT
    back = slot_acquire(channel_slug="idem", member="b", limits=limits, now=NOW + HOUR + 0.1)
    assert back.allowed and back.at == other.at


def test_keys_live_under_kefu_rl_and_expire(redis_clean):
    slot_acquire(channel_slug="keys", member="a", limits=AccountLimits(rate_per_hour=5, min_gap=1, max_gap=1))
    keys = sorted(redis_clean.keys("kefu:rl:*"))
    assert keys == ["kefu:rl:keys:log", "kefu:rl:keys:next"]
    assert all(0 < redis_clean.pttl(k) <= (HOUR + 5) * 1000 for k in keys)


def test_concurrent_threads_never_exceed_the_limit(redis_clean):
    limits = AccountLimits(rate_per_hour=25)
    results: list = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def sender(n: int) -> None:
        client = _client()
        start.wait()
        for i in range(10):
            slot = slot_acquire(channel_slug="conc", member=f"t{n}-{i}", limits=limits, now=NOW, client=client)
            with lock:
                results.append(slot)

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    allowed = [s for s in results if s.allowed]
    assert len(results) == 80
    assert len(allowed) == 25
    held = sorted(s.at for s in results if not s.allowed)
    assert held[0] == pytest.approx(NOW + HOUR)  # the next 25 wait for the first hour to pass
    assert sum(1 for t in held if t == pytest.approx(NOW + HOUR)) == 25


def _process_sender(url: str, n: int, out) -> None:
    import django

    django.setup()
    client = redis.Redis.from_url(url, decode_responses=True)
    limits = AccountLimits(rate_per_hour=0, min_gap=0.5, max_gap=0.8)
    slots = [
        slot_acquire(channel_slug="procs", member=f"p{n}-{i}", limits=limits, now=NOW, client=client).at
        for i in range(15)
    ]
    out.put(slots)


def test_concurrent_processes_get_distinct_gapped_slots(redis_clean):
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_process_sender, args=(settings.REDIS_URL, n, queue)) for n in range(4)]
    for p in procs:
        p.start()
    slots = sorted(s for _ in procs for s in queue.get(timeout=30))
    for p in procs:
        p.join(timeout=10)
    assert len(slots) == 60
    assert slots[0] == pytest.approx(NOW)
    gaps = [b - a for a, b in zip(slots, slots[1:], strict=False)]
    assert min(gaps) >= 0.5 - 1e-3  # one sender at a time, every message at least min_gap after the previous
    assert max(gaps) <= 0.8 + 1e-3


def test_gap_reason_and_limiter_outage(redis_clean):
    limits = AccountLimits(min_gap=2, max_gap=2)
    assert slot_acquire(channel_slug="gap", member="a", limits=limits, now=NOW).allowed
    second = slot_acquire(channel_slug="gap", member="b", limits=limits, now=NOW)
    assert (second.allowed, second.reason, second.at) == (False, REASON_MIN_GAP, pytest.approx(NOW + 2))
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    with pytest.raises(ratelimit.LimiterUnavailable):
        slot_acquire(channel_slug="gap", member="c", limits=limits, client=dead)


def test_limits_from_settings_and_channel(settings):
    settings.KEFU_RATE_LIMITS_ENABLED = True
    settings.KEFU_DEFAULT_RATE_PER_HOUR = 200
    settings.KEFU_BRIDGE_MIN_GAP_SECONDS = 1.0
    settings.KEFU_BRIDGE_MAX_GAP_SECONDS = 3.0
    assert limits_for("bridge", {}) == AccountLimits(rate_per_hour=200, min_gap=1.0, max_gap=3.0)
    assert limits_for("oa", {}) == AccountLimits(rate_per_hour=200)
    assert limits_for("kf", {"rate_per_hour": 50}) == AccountLimits(rate_per_hour=50)
    assert limits_for("bridge", {"rate_per_hour": 0, "min_gap_seconds": 0, "max_gap_seconds": 0}).active is False
    assert limits_for("bridge", {"min_gap_seconds": 2}) == AccountLimits(rate_per_hour=200, min_gap=2, max_gap=6)
    assert limits_for("bridge", {"min_gap_seconds": 0}) == AccountLimits(rate_per_hour=200)
    assert limits_for("bridge", {"min_gap_seconds": 1, "max_gap_seconds": 1.5}).max_gap == 1.5
    assert limits_for("web", {}).active is False
    settings.KEFU_RATE_LIMITS_ENABLED = False
    assert limits_for("bridge", {}).active is False
    assert slot_acquire(channel_slug="off", member="x", limits=limits_for("bridge", {})).allowed
