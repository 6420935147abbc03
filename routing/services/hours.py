"""Business hours per agent group: a weekly schedule (local time) plus holidays.

Rules: a group without any ``BusinessHours`` row is open around the clock, except on its holidays. An interval whose closing time is not
after its opening time runs past midnight (22:00-02:00 opens on its weekday and closes the next day).
A ``Holiday`` closes its date for its group (or, without a group, for every group); an interval that
started the evening before a holiday still runs to its end.
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from routing.models import AgentGroup, BusinessHours, Holiday

LOOKAHEAD_DAYS = 30


def _intervals(group: AgentGroup, start_day: dt.date, days: int) -> list[tuple[dt.datetime, dt.datetime]]:
    """Opening intervals (aware, local time) that start on ``start_day - 1`` .. ``start_day + days``."""
    hours = list(BusinessHours.objects.filter(group=group))
    if not hours:  # around the clock: one all-day interval per day
        hours = [BusinessHours(weekday=d, opens=dt.time(0), closes=dt.time(0)) for d in range(7)]
    first, last = start_day - dt.timedelta(days=1), start_day + dt.timedelta(days=days)
    closed = set(
        Holiday.objects.filter(date__range=(first, last)).filter(group__isnull=True).values_list("date", flat=True)
    ) | set(Holiday.objects.filter(date__range=(first, last), group=group).values_list("date", flat=True))
    tz = timezone.get_current_timezone()
    out = []
    day = first
    while day <= last:
        if day not in closed:
            for h in hours:
                if h.weekday != day.weekday():
                    continue
                opens = timezone.make_aware(dt.datetime.combine(day, h.opens), tz)
                close_day = day if h.closes > h.opens else day + dt.timedelta(days=1)
                closes = timezone.make_aware(dt.datetime.combine(close_day, h.closes), tz)
                out.append((opens, closes))
        day += dt.timedelta(days=1)
    return sorted(out)


def group_is_open(group: AgentGroup | None, now: dt.datetime | None = None) -> bool:
    if group is None:
        return True
    now = timezone.localtime(now or timezone.now())
    return any(opens <= now < closes for opens, closes in _intervals(group, now.date(), 1))


def group_next_open(group: AgentGroup | None, now: dt.datetime | None = None) -> dt.datetime | None:
    """When the group is next open (``now`` if it is open); None when no opening in the next 30 days."""
    now = timezone.localtime(now or timezone.now())
    if group_is_open(group, now):
        return now
    for opens, closes in _intervals(group, now.date(), LOOKAHEAD_DAYS):
        if closes > now:
            return max(opens, now)
    return None
