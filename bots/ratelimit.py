"""Per-account send limits in Redis, shared by every worker: the hourly limit and the random gap of personal
accounts. The algorithm is ``bots.ratelimit_math.schedule_slot``; here it runs as one Lua script, so two workers
can never take the same slot or both take the last one.

Keys (per channel slug): ``kefu:rl:<slug>:log`` (sorted set: member = the outbox row's idempotency key, score =
its slot in Unix seconds) and ``kefu:rl:<slug>:next`` (the earliest time of the next new slot). Both expire on
their own. Redis flushed: the log starts empty again (at worst one extra hour's quota), nothing else is lost.

Channel settings (``Channel.settings``): ``rate_per_hour`` (default ``KEFU_DEFAULT_RATE_PER_HOUR``, 0 = no hourly
limit), ``min_gap_seconds`` / ``max_gap_seconds`` (bridge default ``KEFU_BRIDGE_MIN_GAP_SECONDS`` /
``KEFU_BRIDGE_MAX_GAP_SECONDS``, other kinds 0; with only the minimum set the maximum keeps the default ratio, so
``min_gap_seconds: 2`` means 2–6 s and ``0`` means no gap): each message waits a random gap in that range after the
previous one. ``KEFU_RATE_LIMITS_ENABLED=false`` turns all of it off (load
tests). The web channel never leaves the process and has no limits.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

import redis
from django.conf import settings

from bots import ratelimit_math
from core import redis as kredis

LIMITED_KINDS = ("oa", "kf", "bridge")

_SCRIPT = """
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local gap = tonumber(ARGV[4])
local member = ARGV[5]
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local existing = redis.call('ZSCORE', KEYS[1], member)
if existing then
  local slot = tonumber(existing)
  if slot <= now then return {1, existing, ''} end
  return {0, existing, ''}
end
local next_free = tonumber(redis.call('GET', KEYS[2]) or '0')
local at = math.max(now, next_free)
local reason = ''
if at > now then reason = 'min_gap' end
if limit > 0 then
  local n = redis.call('ZCARD', KEYS[1])
  if n >= limit then
    local oldest = redis.call('ZRANGE', KEYS[1], n - limit, n - limit, 'WITHSCORES')
    local earliest = tonumber(oldest[2]) + window
    if earliest > at then
      at = earliest
      reason = 'rate_limit'
    end
  end
end
local slot = string.format('%.4f', at)
redis.call('ZADD', KEYS[1], slot, member)
redis.call('PEXPIRE', KEYS[1], math.ceil((at - now + window) * 1000) + 1000)
local new_next = math.max(next_free, at + gap)
redis.call('SET', KEYS[2], string.format('%.4f', new_next), 'PX', math.ceil(math.max(new_next - now, 0) * 1000) + 1000)
if at <= now then return {1, slot, ''} end
return {0, slot, reason}
"""


@dataclasses.dataclass(frozen=True)
class AccountLimits:
    rate_per_hour: int = 0
    min_gap: float = 0.0
    max_gap: float = 0.0

    @property
    def active(self) -> bool:
        return self.rate_per_hour > 0 or self.max_gap > 0 or self.min_gap > 0


def _number(value: Any, default: float) -> float:
    try:
        return float(value) if value is not None and value != "" else default
    except (TypeError, ValueError):
        return default


def limits_for(kind: str, channel_settings: Mapping[str, Any]) -> AccountLimits:
    """The account limits of a channel, from its settings and the project defaults."""
    if not settings.KEFU_RATE_LIMITS_ENABLED or kind not in LIMITED_KINDS:
        return AccountLimits()
    rate = int(_number(channel_settings.get("rate_per_hour"), settings.KEFU_DEFAULT_RATE_PER_HOUR))
    default_min, default_max = (
        (settings.KEFU_BRIDGE_MIN_GAP_SECONDS, settings.KEFU_BRIDGE_MAX_GAP_SECONDS) if kind == "bridge" else (0, 0)
    )
    min_gap = _number(channel_settings.get("min_gap_seconds"), default_min)
    if channel_settings.get("min_gap_seconds") in (None, ""):
        max_default = default_max
    else:  # only the minimum set: keep the default spread (1–3 s → min to 3 × min); 0 means no gap
        max_default = min_gap * (default_max / default_min if default_min > 0 else 1.0)
    max_gap = _number(channel_settings.get("max_gap_seconds"), max_default)
    return AccountLimits(rate_per_hour=max(rate, 0), min_gap=max(min_gap, 0.0), max_gap=max(max_gap, min_gap, 0.0))


class LimiterUnavailable(Exception):
    """Redis did not answer: the caller holds the message and tries again later (never sends unchecked)."""


_script_cache: dict[int, Any] = {}


def _script(client: redis.Redis) -> Any:
    script = _script_cache.get(id(client))
    if script is None:
        script = _script_cache[id(client)] = client.register_script(_SCRIPT)
    return script


def log_key(channel_slug: str) -> str:
    return kredis.key("rl", channel_slug, "log")


def next_key(channel_slug: str) -> str:
    return kredis.key("rl", channel_slug, "next")


def slot_acquire(
    *,
    channel_slug: str,
    member: str,
    limits: AccountLimits,
    now: float | None = None,
    window: float = ratelimit_math.HOUR,
    client: redis.Redis | None = None,
) -> ratelimit_math.Slot:
    """Take (or find again) the send slot of ``member`` (an outbox idempotency key) on one account.

    ``allowed`` means send now; otherwise wait until ``at``. Calling again with the same member returns the same
    slot, so retries and re-checks never use up more of the quota. Raises ``LimiterUnavailable``.
    """
    current = time.time() if now is None else now
    if not limits.active:
        return ratelimit_math.Slot(at=current, allowed=True)
    gap = ratelimit_math.pick_gap(limits.min_gap, limits.max_gap)
    client = client or kredis.client()
    try:
        allowed, slot, reason = _script(client)(
            keys=[log_key(channel_slug), next_key(channel_slug)],
            args=[f"{current:.4f}", limits.rate_per_hour, window, f"{gap:.4f}", member],
            client=client,
        )
    except redis.RedisError as exc:
        raise LimiterUnavailable(str(exc)) from exc
    return ratelimit_math.Slot(at=float(slot), allowed=bool(int(allowed)), reason=str(reason or ""))


def account_reset(channel_slug: str, *, client: redis.Redis | None = None) -> None:
    """Forget an account's log and gap (tests, or an operator raising a limit)."""
    (client or kredis.client()).delete(log_key(channel_slug), next_key(channel_slug))
