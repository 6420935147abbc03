"""Reads of the bots app."""

import time

import redis
from django.db.models import QuerySet

from bots import ratelimit, ratelimit_math
from bots.models import Channel, Conversation, Customer, Message


def web_channel_default() -> Channel | None:
    return Channel.objects.filter(kind=Channel.Kind.WEB, enabled=True).order_by("id").first()


def web_customer_get(*, customer_id: int) -> Customer | None:
    return Customer.objects.filter(pk=customer_id, channel__kind=Channel.Kind.WEB).select_related("channel").first()


def web_customers_list(*, limit: int = 50) -> list[Customer]:
    return list(Customer.objects.filter(channel__kind=Channel.Kind.WEB).order_by("-id")[:limit])


def customer_messages(*, customer: Customer, limit: int = 200) -> list[Message]:
    rows = Message.objects.filter(conversation__customer=customer).order_by("-created_at", "-id")[:limit]
    return list(reversed(rows))


def conversations_list() -> QuerySet[Conversation]:
    return Conversation.objects.select_related("customer", "channel").order_by("-last_message_at", "-id")


def messages_list() -> QuerySet[Message]:
    return Message.objects.select_related("channel").order_by("created_at", "id")


def channel_limits_usage(*, channels) -> dict[int, ratelimit_math.Usage | None]:
    """Each channel's use of its hourly sending limit right now (channel id → Usage; None when Redis does not
    answer). Read-only: the same Redis log the sender writes (``bots.ratelimit``), so nothing is counted twice.
    Channels without an hourly limit (web, limits off) get a Usage with ``limit`` 0."""
    channels = list(channels)
    now = time.time()
    limits = {c.pk: ratelimit.limits_for(c.kind, c.settings or {}).rate_per_hour for c in channels}
    limited = [c.slug for c in channels if limits[c.pk] > 0]
    try:
        slots = ratelimit.usage_read(limited, now=now) if limited else {}
    except redis.RedisError:
        return {c.pk: None for c in channels}
    return {c.pk: ratelimit_math.usage_summary(slots.get(c.slug, []), now=now, limit=limits[c.pk]) for c in channels}


def channel_limit_alerts() -> list[dict]:
    """Sending accounts to warn operators about: an alert raised within the last hour (80 % reached) or usage at
    80 % now. Each: ``channel`` (the Channel), ``usage`` (Usage), ``alert`` (the recorded alert or None)."""
    channels = list(Channel.objects.filter(kind__in=ratelimit.LIMITED_KINDS).order_by("name", "id"))
    if not channels:
        return []
    try:
        alerts = ratelimit.alerts_active([c.slug for c in channels])
    except redis.RedisError:
        return []
    usage = channel_limits_usage(channels=channels)
    found = []
    for channel in channels:
        current = usage.get(channel.pk)
        if channel.slug in alerts or (current is not None and current.alerting):
            found.append({"channel": channel, "usage": current, "alert": alerts.get(channel.slug)})
    return found
