"""Routing and human takeover: people behind channel customers, orders, RFM scores, agent groups and
agents, routing rules, tickets (one per hand-off) with their history, canned replies.

Routing reads ``bots.models`` (customers, conversations) but never changes bots' schema: the link from a
channel customer to a person is a routing row (``CustomerLink``), not a column on ``bots.Customer``.
Models hold fields, constraints and cheap properties; every write goes through ``routing.services``.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from bots.models import Customer
from core.fields import EncryptedTextField
from core.models import TimeStampedModel

_SPLIT = re.compile(r"[,，、;；|\n]+")


def split_list(value: str) -> list[str]:
    """'a, b，c|d' -> ['a', 'b', 'c', 'd'] (commas in both widths, 、, semicolons, |, new lines)."""
    return [part.strip() for part in _SPLIT.split(value or "") if part.strip()]


class Priority(models.IntegerChoices):
    LOW = 1, _("Low")
    NORMAL = 2, _("Normal")
    HIGH = 3, _("High")
    URGENT = 4, _("Urgent")


PRIORITY_NAMES = {Priority.LOW: "low", Priority.NORMAL: "normal", Priority.HIGH: "high", Priority.URGENT: "urgent"}


# --- customers ---------------------------------------------------------------------------------------------


class Tag(models.Model):
    name = models.CharField(_("name"), max_length=40, unique=True)
    color = models.CharField(_("color"), max_length=16, blank=True, default="", help_text=_("e.g. #d33 or red"))

    class Meta:
        verbose_name = _("tag")
        verbose_name_plural = _("tags")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Person(TimeStampedModel):
    """One real customer, possibly reached through several channels (one ``CustomerLink`` per channel
    customer). Orders, RFM scores and tags belong to the person."""

    name = EncryptedTextField(_("name"), blank=True, default="")
    note = EncryptedTextField(_("note"), blank=True, default="")
    tags = models.ManyToManyField(Tag, blank=True, related_name="people", verbose_name=_("tags"))

    class Meta:
        verbose_name = _("customer profile")
        verbose_name_plural = _("customer profiles")
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.name or f"#{self.pk}"


class ChannelCustomer(Customer):
    """``bots.Customer`` seen from routing (a proxy, no table): the admin list where channel customers are
    merged into one person and where their customer card is shown."""

    class Meta:
        proxy = True
        verbose_name = _("customer (all channels)")
        verbose_name_plural = _("customers (all channels)")


class CustomerLink(models.Model):
    """Which person a channel customer is. At most one person per channel customer."""

    customer = models.OneToOneField(
        "bots.Customer",
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="routing_link",
        verbose_name=_("customer"),
    )
    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="links", verbose_name=_("person"))
    linked_at = models.DateTimeField(_("linked at"), auto_now_add=True)

    class Meta:
        verbose_name = _("customer link")
        verbose_name_plural = _("customer links")

    def __str__(self) -> str:
        return f"{self.customer_id} → {self.person_id}"


class Order(TimeStampedModel):
    class Status(models.TextChoices):
        PENDING = "pending", _("Pending payment")
        PAID = "paid", _("Paid")
        SHIPPED = "shipped", _("Shipped")
        COMPLETED = "completed", _("Completed")
        REFUNDED = "refunded", _("Refunded")
        CANCELLED = "cancelled", _("Cancelled")

    COUNTED = (Status.PAID, Status.SHIPPED, Status.COMPLETED)
    """Statuses that count for RFM and lifetime value (paid and not given back)."""

    number = models.CharField(_("order number"), max_length=64, unique=True)
    customer = models.ForeignKey(
        "bots.Customer", on_delete=models.PROTECT, related_name="orders", verbose_name=_("customer")
    )
    person = models.ForeignKey(
        Person,
        on_delete=models.PROTECT,
        related_name="orders",
        verbose_name=_("person"),
        help_text=_("Set from the customer's link; moved when customers are merged."),
    )
    amount = models.DecimalField(
        _("amount"), max_digits=12, decimal_places=2, validators=[MinValueValidator(0)], help_text=_("In yuan.")
    )
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)
    items = models.JSONField(_("items"), default=list, blank=True, help_text=_('e.g. [{"sku": "A1", "qty": 2}]'))
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PAID)

    class Meta:
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        ordering = ["-paid_at", "-id"]
        indexes = [models.Index(fields=["person", "paid_at"], name="order_person_paid")]
        constraints = [models.CheckConstraint(condition=Q(amount__gte=0), name="order_amount_not_negative")]

    def __str__(self) -> str:
        return self.number

    def clean(self) -> None:
        if self.status in self.COUNTED and self.paid_at is None:
            raise ValidationError({"paid_at": _("A paid order needs its payment time.")})
        if not isinstance(self.items, list):
            raise ValidationError({"items": _("Items must be a list.")})


class RfmScore(models.Model):
    """The last RFM computation for a person (the source of truth behind the ``kefu:rfm`` sorted set)."""

    person = models.OneToOneField(
        Person, on_delete=models.CASCADE, primary_key=True, related_name="rfm", verbose_name=_("person")
    )
    recency_days = models.FloatField(_("days since the last order"), null=True, blank=True)
    frequency = models.PositiveIntegerField(_("orders"), default=0)
    monetary = models.DecimalField(_("amount spent"), max_digits=14, decimal_places=2, default=0)
    r = models.PositiveSmallIntegerField("R")
    f = models.PositiveSmallIntegerField("F")
    m = models.PositiveSmallIntegerField("M")
    segment = models.CharField(_("segment"), max_length=32, db_index=True)
    tier = models.CharField(_("tier"), max_length=16, db_index=True)
    score = models.FloatField(_("RFM score"), db_index=True)
    computed_at = models.DateTimeField(_("computed at"))

    class Meta:
        verbose_name = _("RFM score")
        verbose_name_plural = _("RFM scores")
        ordering = ["-score"]

    def __str__(self) -> str:
        return f"{self.person_id}: {self.score} {self.tier}"


# --- agents --------------------------------------------------------------------------------------------------


class AgentGroup(TimeStampedModel):
    name = models.CharField(_("name"), max_length=60, unique=True)
    slug = models.SlugField(_("slug"), max_length=40, unique=True)
    description = models.CharField(_("description"), max_length=200, blank=True)
    is_default = models.BooleanField(
        _("default group"), default=False, help_text=_("Gets the hand-offs no routing rule sends elsewhere.")
    )
    auto_assign = models.BooleanField(
        _("assign automatically"),
        default=True,
        help_text=_(
            "Give new tickets to the least-loaded online agent; otherwise they wait in the queue to be claimed."
        ),
    )
    sla_minutes = models.PositiveIntegerField(
        _("SLA (minutes)"), null=True, blank=True, help_text=_("Time to the first agent reply; empty: the default.")
    )

    class Meta:
        verbose_name = _("agent group")
        verbose_name_plural = _("agent groups")
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True), name="one_default_agent_group")
        ]

    def __str__(self) -> str:
        return self.name


class BusinessHours(models.Model):
    """One opening interval of a group on a weekday (local time). A group without any is always open."""

    class Weekday(models.IntegerChoices):
        MONDAY = 0, _("Monday")
        TUESDAY = 1, _("Tuesday")
        WEDNESDAY = 2, _("Wednesday")
        THURSDAY = 3, _("Thursday")
        FRIDAY = 4, _("Friday")
        SATURDAY = 5, _("Saturday")
        SUNDAY = 6, _("Sunday")

    group = models.ForeignKey(AgentGroup, on_delete=models.CASCADE, related_name="hours", verbose_name=_("group"))
    weekday = models.PositiveSmallIntegerField(_("weekday"), choices=Weekday.choices)
    opens = models.TimeField(_("opens"))
    closes = models.TimeField(_("closes"), help_text=_("Earlier than the opening time means after midnight."))

    class Meta:
        verbose_name = _("business hours")
        verbose_name_plural = _("business hours")
        ordering = ["group", "weekday", "opens"]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.opens:%H:%M}-{self.closes:%H:%M}"

    def clean(self) -> None:
        if self.opens == self.closes:
            raise ValidationError({"closes": _("Opening and closing times must differ.")})


class Holiday(models.Model):
    """A day on which a group (or, without a group, every group) is closed."""

    date = models.DateField(_("date"))
    name = models.CharField(_("name"), max_length=60, blank=True)
    group = models.ForeignKey(
        AgentGroup,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="holidays",
        verbose_name=_("group"),
        help_text=_("Empty: every group."),
    )

    class Meta:
        verbose_name = _("holiday")
        verbose_name_plural = _("holidays")
        ordering = ["date"]
        constraints = [models.UniqueConstraint(fields=["date", "group"], name="uniq_holiday_per_group")]

    def __str__(self) -> str:
        return f"{self.date} {self.name}"


class AgentProfile(TimeStampedModel):
    class Presence(models.TextChoices):
        ONLINE = "online", _("Online")
        AWAY = "away", _("Away")
        OFFLINE = "offline", _("Offline")

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent_profile", verbose_name=_("user")
    )
    display_name = models.CharField(_("display name"), max_length=60, blank=True)
    groups = models.ManyToManyField(AgentGroup, blank=True, related_name="agents", verbose_name=_("groups"))
    capacity = models.PositiveSmallIntegerField(
        _("capacity"), default=5, help_text=_("Most conversations the agent handles at once.")
    )
    presence = models.CharField(
        _("presence"), max_length=16, choices=Presence.choices, default=Presence.OFFLINE, db_index=True
    )
    last_seen = models.DateTimeField(_("last seen"), null=True, blank=True)
    last_assigned_at = models.DateTimeField(_("last assigned at"), null=True, blank=True)
    timed_out_at = models.DateTimeField(
        _("timed out at"), null=True, blank=True, help_text=_("Set when the presence sweep took the agent offline.")
    )

    class Meta:
        verbose_name = _("agent")
        verbose_name_plural = _("agents")
        ordering = ["user__username"]

    def __str__(self) -> str:
        return self.display_name or self.user.get_username()


# --- routing rules -------------------------------------------------------------------------------------------


class RoutingRule(TimeStampedModel):
    """Evaluated in ``position`` order; the first enabled rule whose conditions all hold decides the group,
    priority and SLA of a hand-off. Empty conditions always hold."""

    name = models.CharField(_("name"), max_length=100)
    position = models.IntegerField(_("order"), default=100, help_text=_("Lower is evaluated first."))
    enabled = models.BooleanField(_("enabled"), default=True)
    # conditions
    tiers = models.CharField(
        _("tiers"), max_length=100, blank=True, help_text=_("vip, high, normal, low; comma-separated.")
    )
    segments = models.CharField(
        _("segments"), max_length=300, blank=True, help_text=_("Segment codes, e.g. important_value; comma-separated.")
    )
    score_min = models.FloatField(_("RFM score at least"), null=True, blank=True)
    score_max = models.FloatField(_("RFM score at most"), null=True, blank=True)
    reasons = models.CharField(
        _("hand-off reasons"), max_length=200, blank=True, help_text=_("e.g. anger, customer_request; comma-separated.")
    )
    intents = models.CharField(_("intents"), max_length=300, blank=True, help_text=_("Intent names; comma-separated."))
    channel_kinds = models.CharField(
        _("channel kinds"), max_length=100, blank=True, help_text=_("web, oa, kf, bridge; comma-separated.")
    )
    channel_slugs = models.CharField(
        _("channels"), max_length=300, blank=True, help_text=_("Channel slugs; comma-separated.")
    )
    keywords = models.CharField(
        _("keywords"), max_length=500, blank=True, help_text=_("The message contains any of these; comma-separated.")
    )
    weekdays = models.CharField(
        _("weekdays"),
        max_length=40,
        blank=True,
        help_text=_("1 = Monday … 7 = Sunday; comma-separated; empty: every day."),
    )
    time_from = models.TimeField(_("from (local time)"), null=True, blank=True)
    time_to = models.TimeField(_("until (local time)"), null=True, blank=True)
    # actions
    group = models.ForeignKey(
        AgentGroup,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="rules",
        verbose_name=_("target group"),
    )
    priority = models.PositiveSmallIntegerField(_("priority"), choices=Priority.choices, default=Priority.NORMAL)
    sla_minutes = models.PositiveIntegerField(_("SLA (minutes)"), null=True, blank=True)
    triggers_handoff = models.BooleanField(
        _("hands off by itself"),
        default=False,
        help_text=_(
            "When the rule matches a customer message, hand the conversation to an agent even if the bot could answer."
        ),
    )

    class Meta:
        verbose_name = _("routing rule")
        verbose_name_plural = _("routing rules")
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from routing.scoring import SEGMENTS, TIERS

        errors = {}
        bad_tiers = [t for t in split_list(self.tiers) if t not in TIERS]
        if bad_tiers:
            errors["tiers"] = _("Unknown tiers: %(v)s") % {"v": ", ".join(bad_tiers)}
        bad_segments = [s for s in split_list(self.segments) if s not in SEGMENTS]
        if bad_segments:
            errors["segments"] = _("Unknown segments: %(v)s") % {"v": ", ".join(bad_segments)}
        bad_days = [d for d in split_list(self.weekdays) if d not in {"1", "2", "3", "4", "5", "6", "7"}]
        if bad_days:
            errors["weekdays"] = _("Weekdays are numbers 1 to 7.")
        if self.score_min is not None and self.score_max is not None and self.score_min > self.score_max:
            errors["score_max"] = _("The upper bound is below the lower bound.")
        if (self.time_from is None) != (self.time_to is None):
            errors["time_to"] = _("Give both ends of the time window, or neither.")
        if errors:
            raise ValidationError(errors)


# --- tickets -------------------------------------------------------------------------------------------------


class Ticket(TimeStampedModel):
    """One hand-off of a conversation to people, from the request to its end."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        ASSIGNED = "assigned", _("Assigned")
        WAITING_CUSTOMER = "waiting_customer", _("Waiting for the customer")
        RESOLVED = "resolved", _("Resolved")
        CLOSED = "closed", _("Closed")

    class Reason(models.TextChoices):
        CUSTOMER_REQUEST = "customer_request", _("The customer asked for a person")
        ANGER = "anger", _("Anger or strong dissatisfaction")
        FALLBACK_STREAK = "fallback_streak", _("The bot could not answer several times")
        LOW_CONFIDENCE_STREAK = "low_confidence_streak", _("The bot was unsure several times")
        INTENT = "intent", _("An intent handled by people")
        RULE = "rule", _("A routing rule")
        AGENT = "agent", _("Taken over by an agent")

    class CsatState(models.TextChoices):
        NONE = "", _("Not asked")
        ASKED = "asked", _("Asked")
        ANSWERED = "answered", _("Answered")
        LAPSED = "lapsed", _("Not answered")

    OPEN = (Status.QUEUED, Status.ASSIGNED, Status.WAITING_CUSTOMER)
    WITH_AGENT = (Status.ASSIGNED, Status.WAITING_CUSTOMER)

    conversation = models.ForeignKey(
        "bots.Conversation", on_delete=models.CASCADE, related_name="tickets", verbose_name=_("conversation")
    )
    customer = models.ForeignKey(
        "bots.Customer", on_delete=models.CASCADE, related_name="tickets", verbose_name=_("customer")
    )
    person = models.ForeignKey(
        Person, on_delete=models.SET_NULL, null=True, blank=True, related_name="tickets", verbose_name=_("person")
    )
    trigger_message = models.ForeignKey(
        "bots.Message",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("triggering message"),
    )
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.QUEUED, db_index=True)
    priority = models.PositiveSmallIntegerField(_("priority"), choices=Priority.choices, default=Priority.NORMAL)
    reason = models.CharField(_("reason"), max_length=32, choices=Reason.choices)
    intent = models.CharField(_("intent"), max_length=60, blank=True, default="")
    rule = models.ForeignKey(
        RoutingRule,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="tickets",
        verbose_name=_("routing rule"),
    )
    group = models.ForeignKey(
        AgentGroup, on_delete=models.SET_NULL, null=True, blank=True, related_name="tickets", verbose_name=_("group")
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_tickets",
        verbose_name=_("assignee"),
    )
    tier = models.CharField(_("tier"), max_length=16, blank=True, default="")
    rfm_score = models.FloatField(_("RFM score"), null=True, blank=True)
    leave_message = models.BooleanField(
        _("left a message"), default=False, help_text=_("Opened outside business hours; answer when agents are back.")
    )
    sla_due_at = models.DateTimeField(_("SLA due"), null=True, blank=True, db_index=True)
    sla_breached_at = models.DateTimeField(_("SLA breached at"), null=True, blank=True)
    queued_at = models.DateTimeField(_("queued at"), null=True, blank=True)
    assigned_at = models.DateTimeField(_("assigned at"), null=True, blank=True)
    first_response_at = models.DateTimeField(_("first agent reply at"), null=True, blank=True)
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    category = models.CharField(_("resolution category"), max_length=60, blank=True, default="")
    position_told = models.PositiveIntegerField(
        _("queue position last told"),
        null=True,
        blank=True,
        help_text=_("Customers ahead, as last told to the customer."),
    )
    csat_state = models.CharField(_("CSAT"), max_length=16, choices=CsatState.choices, blank=True, default="")
    csat_score = models.PositiveSmallIntegerField(
        _("CSAT score"), null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    csat_asked_at = models.DateTimeField(_("CSAT asked at"), null=True, blank=True)
    csat_answered_at = models.DateTimeField(_("CSAT answered at"), null=True, blank=True)
    version = models.PositiveIntegerField(_("version"), default=1, help_text=_("Grows with every change."))

    class Meta:
        verbose_name = _("ticket")
        verbose_name_plural = _("tickets")
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation"],
                condition=Q(status__in=["queued", "assigned", "waiting_customer"]),
                name="one_open_ticket_per_conversation",
            ),
            models.CheckConstraint(
                condition=Q(csat_score__isnull=True) | Q(csat_score__gte=1, csat_score__lte=5), name="ticket_csat_1_5"
            ),
        ]
        indexes = [
            models.Index(fields=["group", "status", "-priority", "queued_at"], name="ticket_queue"),
            models.Index(fields=["assignee", "status"], name="ticket_assignee_status"),
        ]

    def __str__(self) -> str:
        return f"T{self.pk}"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN

    @property
    def priority_name(self) -> str:
        return PRIORITY_NAMES.get(self.priority, "normal")


class TicketEvent(models.Model):
    """The history of a ticket: every change, who made it, notes (internal, never sent to the customer)."""

    class Kind(models.TextChoices):
        CREATED = "created", _("Created")
        ASSIGNED = "assigned", _("Assigned")
        CLAIMED = "claimed", _("Claimed")
        TRANSFERRED = "transferred", _("Transferred")
        REQUEUED = "requeued", _("Back in the queue")
        REPLIED = "replied", _("Agent replied")
        CUSTOMER_REPLIED = "customer_replied", _("Customer replied")
        NOTE = "note", _("Internal note")
        RETURNED_TO_BOT = "returned_to_bot", _("Returned to the bot")
        RESOLVED = "resolved", _("Resolved")
        CLOSED = "closed", _("Closed")
        CSAT = "csat", _("Satisfaction rating")
        SLA_BREACHED = "sla_breached", _("SLA breached")
        POSITION = "position", _("Queue position told")

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="events", verbose_name=_("ticket"))
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("by"),
    )
    from_status = models.CharField(_("from status"), max_length=20, blank=True, default="")
    to_status = models.CharField(_("to status"), max_length=20, blank=True, default="")
    group = models.ForeignKey(
        AgentGroup, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("group")
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("assignee"),
    )
    text = EncryptedTextField(_("note"), blank=True, default="")
    data = models.JSONField(_("details"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("ticket event")
        verbose_name_plural = _("ticket events")
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.ticket_id}:{self.kind}"


class CannedReply(TimeStampedModel):
    title = models.CharField(_("title"), max_length=100)
    shortcut = models.SlugField(
        _("shortcut"), max_length=40, unique=True, allow_unicode=True, help_text=_('Typed after "/" in the reply box.')
    )
    text = models.TextField(_("text"))
    group = models.ForeignKey(
        AgentGroup,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="canned_replies",
        verbose_name=_("group"),
        help_text=_("Empty: every group."),
    )
    enabled = models.BooleanField(_("enabled"), default=True)

    class Meta:
        verbose_name = _("canned reply")
        verbose_name_plural = _("canned replies")
        ordering = ["shortcut"]

    def __str__(self) -> str:
        return f"/{self.shortcut} {self.title}"
