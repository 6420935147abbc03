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

Production guard: with ``KEFU_ENV == "production"`` no hourly limit may be switched off (``KEFU_RATE_LIMITS_ENABLED``
false or ``KEFU_DEFAULT_RATE_PER_HOUR`` 0 refuse to start, see ``config/settings/production.py``; a channel's
``rate_per_hour`` 0 is refused by ``setting_clean`` and, if stored anyway, replaced by the default here) unless
``KEFU_ALLOW_UNLIMITED_SENDING`` is set.

Usage and alerts: ``usage_read`` reads the same log without changing it (used / booked / remaining, shown in the
admin); when a slot puts an account at 80 % of its limit, ``slot_acquire`` alerts operators once per window
(``kefu:rl:<slug>:alert``, SET NX with the window as TTL): a warning log line and a ``channel.limit_warning``
realtime event to supervisors; the admin shows a banner while the alert key lives.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import redis
from django.conf import settings
from django.utils.translation import gettext

from bots import ratelimit_math
from core import realtime
from core import redis as kredis

logger = logging.getLogger(__name__)

LIMITED_KINDS = ("oa", "kf", "bridge")
FALLBACK_RATE_PER_HOUR = 200  # production, no override, and no positive default configured

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
  if slot <= now then return {1, existing, '', -1} end
  return {0, existing, '', -1}
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
local taken = redis.call('ZCARD', KEYS[1])
if at <= now then return {1, slot, '', taken} end
return {0, slot, reason, taken}
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


def unlimited_allowed() -> bool:
    """May a sending account go without an hourly limit? Always outside production; in production only with
    ``KEFU_ALLOW_UNLIMITED_SENDING`` (an explicit, documented override)."""
    if getattr(settings, "KEFU_ENV", "local") != "production":
        return True
    return bool(getattr(settings, "KEFU_ALLOW_UNLIMITED_SENDING", False))


def limits_for(kind: str, channel_settings: Mapping[str, Any]) -> AccountLimits:
    """The account limits of a channel, from its settings and the project defaults."""
    if kind not in LIMITED_KINDS or (not settings.KEFU_RATE_LIMITS_ENABLED and unlimited_allowed()):
        return AccountLimits()
    rate = int(_number(channel_settings.get("rate_per_hour"), settings.KEFU_DEFAULT_RATE_PER_HOUR))
    if rate <= 0 and not unlimited_allowed():
        # stored before the guard, or written around the validation: production keeps a limit anyway
        default = int(settings.KEFU_DEFAULT_RATE_PER_HOUR)
        rate = default if default > 0 else FALLBACK_RATE_PER_HOUR
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
        allowed, slot, reason, taken = _script(client)(
            keys=[log_key(channel_slug), next_key(channel_slug)],
            args=[f"{current:.4f}", limits.rate_per_hour, window, f"{gap:.4f}", member],
            client=client,
        )
    except redis.RedisError as exc:
        raise LimiterUnavailable(str(exc)) from exc
    if int(taken) >= 0:
        usage_alert(
            channel_slug=channel_slug, taken=int(taken), limit=limits.rate_per_hour, window=window, client=client
        )
    return ratelimit_math.Slot(at=float(slot), allowed=bool(int(allowed)), reason=str(reason or ""))


def alert_key(channel_slug: str) -> str:
    return kredis.key("rl", channel_slug, "alert")


def usage_alert(
    *, channel_slug: str, taken: int, limit: int, window: float = ratelimit_math.HOUR, client: redis.Redis | None = None
) -> bool:
    """Alert operators when ``taken`` slots put the account at 80 % of ``limit``: at most once per window (the
    alert key is set with NX and lives one window). Returns True when this call raised the alert. Never raises:
    a failed alert must not stop a send."""
    if limit <= 0 or taken < ratelimit_math.alert_threshold(limit):
        return False
    client = client or kredis.client()
    now = time.time()
    record = {"channel": channel_slug, "used": taken, "limit": limit, "at": round(now, 3)}
    try:
        if not client.set(alert_key(channel_slug), json.dumps(record), nx=True, px=int(window * 1000)):
            return False
    except redis.RedisError:
        logger.warning("could not record the sending-limit alert", exc_info=True)
        return False
    percent = round(100 * taken / limit)
    logger.warning(
        "sending limit of account %s at %s%% (%s of %s messages this hour)",
        channel_slug,
        percent,
        taken,
        limit,
        extra={"channel": channel_slug, "used": taken, "limit": limit},
    )
    message = gettext("Account %(channel)s has used %(used)s of its %(limit)s messages per hour (%(percent)s%%).") % {
        "channel": channel_slug,
        "used": taken,
        "limit": limit,
        "percent": percent,
    }
    try:  # after the surrounding commit (the claim transaction), like every realtime event
        realtime.publish(
            realtime.SUPERVISORS, "channel.limit_warning", {**record, "percent": percent, "message": message}
        )
    except Exception:  # never let the alert break a send; the log line and the admin banner remain
        logger.warning("could not publish the sending-limit alert", exc_info=True)
    return True


def alerts_active(channel_slugs: Iterable[str], *, client: redis.Redis | None = None) -> dict[str, dict]:
    """The live alerts (raised within the last window) of these accounts: slug → the recorded alert."""
    slugs = list(channel_slugs)
    if not slugs:
        return {}
    raw = (client or kredis.client()).mget([alert_key(slug) for slug in slugs])
    found = {}
    for slug, value in zip(slugs, raw, strict=True):
        if value:
            try:
                found[slug] = json.loads(value)
            except ValueError:
                found[slug] = {"channel": slug}
    return found


def usage_read(
    channel_slugs: Iterable[str],
    *,
    now: float | None = None,
    window: float = ratelimit_math.HOUR,
    client: redis.Redis | None = None,
) -> dict[str, list[float]]:
    """The slots (Unix seconds) in the current window of each account, read without changing the log (so a page
    view never counts as a send). Raises ``redis.RedisError``."""
    slugs = list(channel_slugs)
    current = time.time() if now is None else now
    pipe = (client or kredis.client()).pipeline(transaction=False)
    for slug in slugs:
        pipe.zrangebyscore(log_key(slug), f"({current - window:.4f}", "+inf", withscores=True)
    return {slug: [score for _member, score in rows] for slug, rows in zip(slugs, pipe.execute(), strict=True)}


def account_reset(channel_slug: str, *, client: redis.Redis | None = None) -> None:
    """Forget an account's log, gap and alert (tests, or an operator raising a limit)."""
    (client or kredis.client()).delete(log_key(channel_slug), next_key(channel_slug), alert_key(channel_slug))
