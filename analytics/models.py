"""Daily rollups behind the dashboard: derived data only, rebuilt from messages, conversations, tickets and orders
by ``analytics.services.rollup_day`` (beat: today and yesterday every 5 minutes, the last 9 days nightly).

Every row is one local day (``TIME_ZONE``) × channel × agent group; ``group_id`` 0 means "never handed off".
Ids are plain integers, not foreign keys: rollups never block deleting what they count and are rebuilt anyway.
Which day a number belongs to (see README, "Analytics and knowledge mining"):

- conversation numbers (conversations, ended, solved, handed off, converted, bot response times, segments,
  conversations per intent) count conversations by the day they **started**;
- message numbers (messages, decisions, latency, intent and FAQ hits) by the day of the **message**;
- ticket numbers (tickets, reasons, human times, CSAT, agents) by the day of the **hand-off**.

Distributions (response times, latency) are kept as the list of values, so that percentiles over any range of days
are exact (``percentile_cont`` over ``unnest``).
"""

from django.db import models
from django.utils.translation import gettext_lazy as _

from analytics.fields import FloatListField


class DailyStats(models.Model):
    day = models.DateField(_("day"))
    channel_id = models.BigIntegerField(_("channel"))
    group_id = models.BigIntegerField(_("agent group"), default=0, help_text=_("0: never handed off."))
    # conversations (by the day they started)
    conversations = models.PositiveIntegerField(_("conversations"), default=0)
    ended = models.PositiveIntegerField(_("ended"), default=0)
    bot_solved = models.PositiveIntegerField(_("solved by the bot"), default=0)
    handed_off = models.PositiveIntegerField(_("handed off"), default=0)
    converted = models.PositiveIntegerField(_("followed by an order"), default=0)
    bot_first_response_s = FloatListField(_("bot first response (s)"))
    bot_resolution_s = FloatListField(_("bot resolution (s)"))
    # messages (by their own day)
    messages_in = models.PositiveIntegerField(_("customer messages"), default=0)
    messages_out = models.PositiveIntegerField(_("replies"), default=0)
    bot_replies = models.PositiveIntegerField(_("bot replies"), default=0)
    agent_replies = models.PositiveIntegerField(_("agent replies"), default=0)
    decisions = models.PositiveIntegerField(_("bot decisions"), default=0)
    fallbacks = models.PositiveIntegerField(_("fallbacks"), default=0)
    unanswered = models.PositiveIntegerField(_("unanswered"), default=0)
    latency_ms = FloatListField(_("decision latency (ms)"))
    # tickets (by the day of the hand-off)
    tickets = models.PositiveIntegerField(_("tickets"), default=0)
    human_first_response_s = FloatListField(_("agent first response (s)"))
    human_resolution_s = FloatListField(_("agent resolution (s)"))
    csat_answers = models.PositiveIntegerField(_("CSAT answers"), default=0)
    csat_sum = models.PositiveIntegerField(_("CSAT total"), default=0)
    computed_at = models.DateTimeField(_("computed at"))

    class Meta:
        verbose_name = _("daily statistics")
        verbose_name_plural = _("daily statistics")
        ordering = ["-day", "channel_id", "group_id"]
        constraints = [
            models.UniqueConstraint(fields=["day", "channel_id", "group_id"], name="uniq_daily_stats"),
        ]
        permissions = [("view_dashboard", _("Can view the analytics dashboard"))]

    def __str__(self) -> str:
        return f"{self.day} c{self.channel_id} g{self.group_id}"


class DailyTopic(models.Model):
    """Counts per topic: ``intent`` (count = decisions; conversations/converted = conversations that touched it),
    ``faq`` (count = answers), ``reason`` (count = hand-offs), ``csat`` (count = answers with that score),
    ``segment`` (conversations/converted by the customer's RFM segment, "" = not scored)."""

    class Kind(models.TextChoices):
        INTENT = "intent", _("Intent")
        FAQ = "faq", _("FAQ")
        REASON = "reason", _("Hand-off reason")
        CSAT = "csat", _("CSAT score")
        SEGMENT = "segment", _("RFM segment")

    day = models.DateField(_("day"))
    channel_id = models.BigIntegerField(_("channel"))
    group_id = models.BigIntegerField(_("agent group"), default=0)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    key = models.CharField(_("key"), max_length=100)
    count = models.PositiveIntegerField(_("count"), default=0)
    conversations = models.PositiveIntegerField(_("conversations"), default=0)
    converted = models.PositiveIntegerField(_("followed by an order"), default=0)

    class Meta:
        verbose_name = _("daily topic count")
        verbose_name_plural = _("daily topic counts")
        ordering = ["-day", "kind", "key"]
        constraints = [
            models.UniqueConstraint(fields=["day", "channel_id", "group_id", "kind", "key"], name="uniq_daily_topic"),
        ]
        indexes = [models.Index(fields=["kind", "day"], name="daily_topic_kind_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.kind}:{self.key}"


class DailyAgent(models.Model):
    """An agent's tickets by the day they were handed off (the ticket's assignee), and replies by their own day."""

    day = models.DateField(_("day"))
    channel_id = models.BigIntegerField(_("channel"))
    group_id = models.BigIntegerField(_("agent group"), default=0)
    agent_id = models.BigIntegerField(_("agent"))
    tickets = models.PositiveIntegerField(_("tickets"), default=0)
    resolved = models.PositiveIntegerField(_("resolved"), default=0)
    replies = models.PositiveIntegerField(_("replies"), default=0)
    first_response_s = FloatListField(_("first response (s)"))
    handle_s = FloatListField(_("handling time (s)"))
    csat_answers = models.PositiveIntegerField(_("CSAT answers"), default=0)
    csat_sum = models.PositiveIntegerField(_("CSAT total"), default=0)

    class Meta:
        verbose_name = _("daily agent statistics")
        verbose_name_plural = _("daily agent statistics")
        ordering = ["-day", "agent_id"]
        constraints = [
            models.UniqueConstraint(fields=["day", "channel_id", "group_id", "agent_id"], name="uniq_daily_agent"),
        ]

    def __str__(self) -> str:
        return f"{self.day} agent {self.agent_id}"
