"""Routing rules: which group, priority and SLA a hand-off gets (first matching rule in ``position`` order).

A rule's conditions are ANDed; an empty condition always holds; list conditions (tiers, segments, reasons,
intents, channel kinds and slugs, keywords, weekdays) hold when the value is one of the listed ones (for
keywords: the message contains one, case-insensitively). The time window is local time, ``from <= t <
until``, running past midnight when ``until`` is earlier than ``from``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time

from django.db.models import signals
from django.utils import timezone

from routing.detect import normalize
from routing.models import AgentGroup, RoutingRule, split_list


@dataclasses.dataclass(frozen=True)
class RoutingContext:
    reason: str = ""
    text: str = ""
    intent: str = ""
    channel_kind: str = ""
    channel_slug: str = ""
    tier: str = "low"
    score: float = 0.0
    segment: str | None = None
    now: dt.datetime | None = None


def _in_window(rule: RoutingRule, now: dt.datetime) -> bool:
    local = timezone.localtime(now)
    days = split_list(rule.weekdays)
    if days and str(local.isoweekday()) not in days:
        return False
    if rule.time_from is None or rule.time_to is None:
        return True
    t = local.time()
    if rule.time_from <= rule.time_to:
        return rule.time_from <= t < rule.time_to
    return t >= rule.time_from or t < rule.time_to


def rule_matches(rule: RoutingRule, ctx: RoutingContext) -> bool:
    """Do all of the rule's conditions hold for ``ctx``? No database access."""
    checks = (
        (rule.tiers, ctx.tier),
        (rule.segments, ctx.segment or ""),
        (rule.reasons, ctx.reason),
        (rule.intents, ctx.intent),
        (rule.channel_kinds, ctx.channel_kind),
        (rule.channel_slugs, ctx.channel_slug),
    )
    for listed, value in checks:
        options = split_list(listed)
        if options and value not in options:
            return False
    if rule.score_min is not None and ctx.score < rule.score_min:
        return False
    if rule.score_max is not None and ctx.score > rule.score_max:
        return False
    keywords = [k.lower() for k in split_list(rule.keywords)]
    if keywords:
        text = normalize(ctx.text).lower()
        if not any(normalize(k).lower() in text for k in keywords):
            return False
    return _in_window(rule, ctx.now or timezone.now())


# Every customer message asks for the hand-off trigger rules (``handoff_check``): a process keeps the enabled
# rules for RULES_TTL seconds instead of querying them each time. A save or delete of a rule or of a group clears
# the copy of the process that made it at once (signals below); other processes see the change within the TTL.
RULES_TTL = 5.0
_rules_lock = threading.Lock()
_rules_cache: tuple[float, tuple[RoutingRule, ...]] | None = None


def rules_enabled(*, handoff_triggers_only: bool = False) -> list[RoutingRule]:
    """The enabled rules in evaluation order (shared instances: do not modify them)."""
    global _rules_cache
    cached = _rules_cache
    if cached is None or time.monotonic() - cached[0] > RULES_TTL:
        with _rules_lock:
            cached = _rules_cache
            if cached is None or time.monotonic() - cached[0] > RULES_TTL:
                loaded = RoutingRule.objects.filter(enabled=True).select_related("group").order_by("position", "id")
                cached = _rules_cache = (time.monotonic(), tuple(loaded))
    rules = cached[1]
    if handoff_triggers_only:
        return [rule for rule in rules if rule.triggers_handoff]
    return list(rules)


def rules_forget(**_kwargs) -> None:
    """Drop this process's copy of the rules (connected to saves and deletes of rules and groups)."""
    global _rules_cache
    _rules_cache = None


for _model in (RoutingRule, AgentGroup):
    for _signal in (signals.post_save, signals.post_delete):
        _signal.connect(
            rules_forget, sender=_model, dispatch_uid=f"routing-rules-forget-{_model.__name__}-{id(_signal)}"
        )


def rules_need_segment(rules: list[RoutingRule]) -> bool:
    return any(r.segments.strip() for r in rules)


def rules_need_rfm(rules: list[RoutingRule]) -> bool:
    return any(
        r.segments.strip() or r.tiers.strip() or r.score_min is not None or r.score_max is not None for r in rules
    )


def rule_first_match(rules: list[RoutingRule], ctx: RoutingContext) -> RoutingRule | None:
    return next((rule for rule in rules if rule_matches(rule, ctx)), None)
