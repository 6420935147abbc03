"""Rate-limit and retry maths for the outbox, with no Django and no Redis: tested on plain numbers.

Three pieces, all working on Unix seconds (floats):

``schedule_slot``
    The per-account scheduler that ``bots.ratelimit`` runs atomically in Redis (a Lua port of this function).
    It is a sliding-window log with reservations: every message that may go gets a *slot* (a time), recorded in
    the account's log. A new slot is the earliest time ``t >= now`` such that

    - ``t >= next_free`` (the previous slot plus a random gap, for personal accounts), and
    - fewer than ``limit`` slots of the log lie in ``(t - window, t]`` (at most ``limit`` per ``window``).

    A slot in the future means "held until then"; the message keeps its slot (keyed by its idempotency key), so
    a held message that comes back at its time goes straight through and a queue of held messages drains in
    order, one slot each, without a thundering herd of re-checks.

``window_verdict``
    The per-customer policies of the platform: the Official Account customer-service window (48 h after the
    customer's last message; a menu click, follow or scan opens 3 messages within 1 minute) and WeCom's quota
    of 5 messages per customer message within 48 h.

``backoff_seconds``
    Exponential backoff with jitter for retryable send failures.

``usage_summary`` / ``alert_threshold``
    An account's used/booked/remaining share of its limit, read from the same slot log (the admin shows it), and
    the 80 % mark at which operators are alerted.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import random
from collections.abc import Callable, Iterable

HOUR = 3600.0
SERVICE_WINDOW_SECONDS = 48 * HOUR
EVENT_WINDOW_SECONDS = 60.0

# reasons stored in Outbox.reason (shown to operators)
REASON_RATE_LIMIT = "rate_limit"  # the account's hourly limit is used up: held until a slot frees
REASON_MIN_GAP = "min_gap"  # personal account: waiting for the random gap after the previous message
REASON_OUTSIDE_WINDOW = "outside_48h_window"  # no customer message in the last 48 h: blocked for good
REASON_WECOM_QUOTA = "wecom_quota"  # WeCom: 5 messages per customer message used up: held until they write
REASON_OA_QUOTA = "oa_quota"  # Official Account: per-customer-message quota used up (when configured)


@dataclasses.dataclass(frozen=True)
class SlotState:
    """One account's scheduler state: the sorted slot log (times) and the earliest time of the next slot."""

    log: tuple[float, ...] = ()
    next_free: float = 0.0


@dataclasses.dataclass(frozen=True)
class Slot:
    at: float  # when the message may go
    allowed: bool  # at <= now: send now
    reason: str = ""  # why it waits (REASON_RATE_LIMIT or REASON_MIN_GAP) when not allowed


def schedule_slot(
    state: SlotState, *, now: float, limit: int, window: float = HOUR, gap: float = 0.0
) -> tuple[Slot, SlotState]:
    """The next slot for a new message and the account's new state. ``limit <= 0`` means no hourly limit."""
    log = [t for t in state.log if t > now - window]
    at = max(now, state.next_free)
    reason = REASON_MIN_GAP if at > now else ""
    if limit > 0 and len(log) >= limit:
        # the (n - limit + 1)-th oldest slot must have left the window: t - window >= log[n - limit]
        earliest = log[len(log) - limit] + window
        if earliest > at:
            at, reason = earliest, REASON_RATE_LIMIT
    bisect.insort(log, at)
    new_state = SlotState(log=tuple(log), next_free=max(state.next_free, at + max(gap, 0.0)))
    return Slot(at=at, allowed=at <= now, reason=reason if at > now else ""), new_state


def pick_gap(min_gap: float, max_gap: float, rand: Callable[[], float] = random.random) -> float:
    """A random spacing in ``[min_gap, max_gap]`` seconds (0 when both are 0), so sends never look mechanical."""
    low, high = max(min_gap, 0.0), max(max_gap, 0.0)
    if high < low:
        high = low
    return low + (high - low) * rand()


ALERT_RATIO = 0.8  # operators are alerted once per window when an account has used this share of its limit


def alert_threshold(limit: int, ratio: float = ALERT_RATIO) -> int:
    """The number of slots in the window at which an account's limit alerts (0: no limit, never)."""
    if limit <= 0:
        return 0
    return max(math.ceil(limit * ratio - 1e-9), 1)


@dataclasses.dataclass(frozen=True)
class Usage:
    """An account's use of its hourly limit at ``now``, read from its slot log (see ``usage_summary``)."""

    limit: int  # 0: no hourly limit
    used: int  # slots in (now - window, now]: messages sent (or being sent) within the last window
    reserved: int  # slots after now: held messages that already booked their turn
    resets_at: float | None  # when the oldest slot of the window leaves it (one more message may go); None: empty
    window: float = HOUR

    @property
    def taken(self) -> int:
        return self.used + self.reserved

    @property
    def remaining(self) -> int | None:
        """New messages that may go now without waiting (None: no limit)."""
        return max(self.limit - self.taken, 0) if self.limit > 0 else None

    @property
    def percent(self) -> int | None:
        return round(100 * self.taken / self.limit) if self.limit > 0 else None

    @property
    def alerting(self) -> bool:
        return self.limit > 0 and self.taken >= alert_threshold(self.limit)


def usage_summary(slots: Iterable[float], *, now: float, limit: int, window: float = HOUR) -> Usage:
    """What ``schedule_slot`` would count for a new message at ``now``: the slots still in the window (past and
    booked), without changing anything."""
    live = sorted(t for t in slots if t > now - window)
    used = sum(1 for t in live if t <= now)
    return Usage(
        limit=max(limit, 0),
        used=used,
        reserved=len(live) - used,
        resets_at=live[0] + window if live else None,
        window=window,
    )


@dataclasses.dataclass(frozen=True)
class WindowPolicy:
    """A channel's per-customer policy. ``quota`` 0 means unlimited within the window; ``event_quota`` 0 means
    events (menu click, follow, scan) do not open a window."""

    window_seconds: float = SERVICE_WINDOW_SECONDS
    quota: int = 0
    quota_reason: str = REASON_WECOM_QUOTA
    event_window_seconds: float = EVENT_WINDOW_SECONDS
    event_quota: int = 0


@dataclasses.dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str = ""
    final: bool = False  # True: blocked for good (never sendable); False with a reason: held
    retry_at: float | None = None  # held: when to look again


def window_verdict(
    policy: WindowPolicy,
    *,
    now: float,
    last_message_at: float | None,
    sent_since_message: int,
    last_event_at: float | None = None,
    sent_since_event: int = 0,
) -> Verdict:
    """May one more message go to this customer now?

    ``last_message_at``: the customer's latest message (not event); ``sent_since_message``: messages we sent
    (or are sending) to them after it. The same two for the latest window-opening event.
    """
    message_open = last_message_at is not None and now < last_message_at + policy.window_seconds
    event_open = (
        policy.event_quota > 0 and last_event_at is not None and now < last_event_at + policy.event_window_seconds
    )
    if message_open and (policy.quota <= 0 or sent_since_message < policy.quota):
        return Verdict(allowed=True)
    if event_open and sent_since_event < policy.event_quota:
        return Verdict(allowed=True)
    if message_open:
        # quota used up: the customer's next message opens a new quota; otherwise the window closes
        assert last_message_at is not None
        return Verdict(allowed=False, reason=policy.quota_reason, retry_at=last_message_at + policy.window_seconds)
    return Verdict(allowed=False, reason=REASON_OUTSIDE_WINDOW, final=True)


def backoff_seconds(
    attempt: int, *, base: float = 2.0, cap: float = 3600.0, rand: Callable[[], float] = random.random
) -> float:
    """Delay before retry number ``attempt`` (1 = after the first failure): exponential, capped, "equal jitter"
    (half fixed, half random) so retries of many rows that failed together spread out."""
    exp = min(cap, base * 2 ** max(attempt - 1, 0))
    return exp / 2 + rand() * exp / 2
