"""Rate-limit, window and backoff maths: plain numbers, no database, no Redis."""

import random

import pytest

from bots.ratelimit_math import (
    HOUR,
    REASON_MIN_GAP,
    REASON_OA_QUOTA,
    REASON_OUTSIDE_WINDOW,
    REASON_RATE_LIMIT,
    REASON_WECOM_QUOTA,
    SlotState,
    WindowPolicy,
    backoff_seconds,
    pick_gap,
    schedule_slot,
    window_verdict,
)

NOW = 1_750_000_000.0


def _run(requests, *, limit, window=HOUR, gap=0.0):
    state = SlotState()
    slots = []
    for at in requests:
        slot, state = schedule_slot(state, now=at, limit=limit, window=window, gap=gap)
        slots.append(slot)
    return slots, state


def test_hourly_limit_allows_the_limit_then_holds_until_the_oldest_leaves_the_window():
    slots, _ = _run([NOW, NOW + 1, NOW + 2, NOW + 3], limit=3, window=100)
    assert [s.allowed for s in slots] == [True, True, True, False]
    assert slots[3].at == NOW + 100  # the first slot leaves the window
    assert slots[3].reason == REASON_RATE_LIMIT


def test_held_messages_queue_up_one_slot_each():
    slots, _ = _run([NOW] * 7, limit=3, window=100)
    assert [s.at - NOW for s in slots] == [0, 0, 0, 100, 100, 100, 200]


def test_old_slots_leave_the_window():
    slots, state = _run([NOW, NOW, NOW + 150], limit=2, window=100)
    assert all(s.allowed for s in slots)
    assert state.log == (NOW + 150,)


def test_gap_spaces_messages_and_is_reported_as_the_reason():
    slots, state = _run([NOW, NOW, NOW], limit=0, gap=2.0)
    assert [s.at - NOW for s in slots] == [0, 2, 4]
    assert slots[0].allowed and not slots[1].allowed
    assert slots[1].reason == REASON_MIN_GAP
    assert state.next_free == NOW + 6


def test_no_limit_and_no_gap_always_allows():
    slots, _ = _run([NOW] * 50, limit=0)
    assert all(s.allowed and s.at == NOW for s in slots)


@pytest.mark.parametrize("seed", range(5))
def test_random_traffic_never_breaks_the_limit_or_the_gap(seed):
    rng = random.Random(seed)
    limit, window, gap = 5, 60.0, 1.5
    requests = sorted(NOW + rng.uniform(0, 400) for _ in range(80))
    slots, _ = _run(requests, limit=limit, window=window, gap=gap)
    times = sorted(s.at for s in slots)
    for request, slot in zip(requests, slots, strict=True):
        assert slot.at >= request
        assert slot.allowed == (slot.at <= request)
    for a, b in zip(times, times[1:], strict=False):
        assert b - a >= gap - 1e-9
    for t in times:  # any window (t - window, t] holds at most `limit` slots
        assert sum(1 for u in times if t - window < u <= t) <= limit


def test_pick_gap_stays_in_bounds():
    assert pick_gap(0, 0) == 0
    assert pick_gap(1, 3, rand=lambda: 0.0) == 1
    assert pick_gap(1, 3, rand=lambda: 1.0) == 3
    assert pick_gap(2, 1, rand=lambda: 0.5) == 2  # max below min: min wins
    assert all(1 <= pick_gap(1, 3) <= 3 for _ in range(100))


WECOM = WindowPolicy(quota=5, quota_reason=REASON_WECOM_QUOTA)
OA = WindowPolicy(quota=0, quota_reason=REASON_OA_QUOTA, event_quota=3)


def test_wecom_five_messages_per_customer_message_then_held_until_the_window_ends():
    last = NOW - 3600
    for sent in range(5):
        assert window_verdict(WECOM, now=NOW, last_message_at=last, sent_since_message=sent).allowed
    sixth = window_verdict(WECOM, now=NOW, last_message_at=last, sent_since_message=5)
    assert not sixth.allowed and not sixth.final
    assert sixth.reason == REASON_WECOM_QUOTA
    assert sixth.retry_at == last + 48 * HOUR


def test_outside_the_48_hour_window_is_blocked_for_good():
    verdict = window_verdict(OA, now=NOW, last_message_at=NOW - 48 * HOUR - 1, sent_since_message=0)
    assert (verdict.allowed, verdict.final, verdict.reason) == (False, True, REASON_OUTSIDE_WINDOW)
    never = window_verdict(WECOM, now=NOW, last_message_at=None, sent_since_message=0)
    assert never.final and never.reason == REASON_OUTSIDE_WINDOW


def test_oa_has_no_quota_by_default_inside_the_window():
    assert window_verdict(OA, now=NOW, last_message_at=NOW - 47 * HOUR, sent_since_message=40).allowed


def test_oa_event_opens_three_messages_within_a_minute():
    verdicts = [
        window_verdict(
            OA, now=NOW, last_message_at=None, sent_since_message=0, last_event_at=NOW - 10, sent_since_event=n
        )
        for n in range(4)
    ]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert verdicts[3].final  # no customer message: nothing opens again until they act
    late = window_verdict(OA, now=NOW, last_message_at=None, sent_since_message=0, last_event_at=NOW - 61)
    assert not late.allowed
    # WeCom events do not open anything
    assert not window_verdict(WECOM, now=NOW, last_message_at=None, sent_since_message=0, last_event_at=NOW).allowed


def test_backoff_grows_exponentially_with_jitter_and_is_capped():
    assert backoff_seconds(1, base=2, rand=lambda: 0.0) == 1
    assert backoff_seconds(1, base=2, rand=lambda: 1.0) == 2
    assert backoff_seconds(4, base=2, rand=lambda: 1.0) == 16
    assert backoff_seconds(4, base=2, rand=lambda: 0.0) == 8
    assert backoff_seconds(30, base=2, cap=3600, rand=lambda: 1.0) == 3600
    values = {round(backoff_seconds(3), 6) for _ in range(50)}
    assert len(values) > 1 and all(4 <= v <= 8 for v in values)  # jittered, within [exp/2, exp]
