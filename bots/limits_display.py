"""Operator-facing text of the per-account sending limits (the Channel admin and the admin index banner)."""

import datetime as dt

from django.utils import timezone
from django.utils.translation import gettext


def limit_alert_text(entry: dict) -> str:
    """The operator-facing warning of one ``selectors.channel_limit_alerts`` entry."""
    usage = entry["usage"]
    alert = entry["alert"] or {}
    used = usage.taken if usage is not None else alert.get("used", "?")
    limit = usage.limit if usage is not None else alert.get("limit", "?")
    return gettext(
        "Sending account %(name)s (%(slug)s) reached 80%% of its hourly limit: now %(used)s of %(limit)s messages "
        "in the last hour. Further messages wait for a free slot."
    ) % {"name": entry["channel"].name, "slug": entry["channel"].slug, "used": used, "limit": limit}


def usage_text(usage) -> str:
    """One channel's hourly sending limit: used / limit, percent, remaining, booked, when a slot frees."""
    if usage is None:
        return gettext("Rate limiter unavailable")
    if usage.limit <= 0:
        return gettext("No hourly limit")
    text = gettext("%(used)s / %(limit)s this hour (%(percent)s%%), %(remaining)s left") % {
        "used": usage.taken,
        "limit": usage.limit,
        "percent": usage.percent,
        "remaining": usage.remaining,
    }
    if usage.reserved:
        text += gettext(", %(reserved)s held for later slots") % {"reserved": usage.reserved}
    if usage.resets_at is not None and usage.remaining == 0:
        moment = timezone.localtime(dt.datetime.fromtimestamp(usage.resets_at, tz=dt.UTC))
        text += gettext(", next slot at %(time)s") % {"time": moment.strftime("%H:%M:%S")}
    return text
