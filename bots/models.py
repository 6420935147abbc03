from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from core.fields import EncryptedCharField, EncryptedTextField
from core.models import TimeStampedModel


class Channel(TimeStampedModel):
    class Kind(models.TextChoices):
        WEB = "web", _("Web / simulator")
        OA = "oa", _("WeChat Official Account")
        KF = "kf", _("WeCom customer service")
        BRIDGE = "bridge", _("Personal WeChat (bridge)")

    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    slug = models.SlugField(_("slug"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=100)
    settings = models.JSONField(_("settings"), default=dict, blank=True, help_text=_("Non-secret settings."))
    secrets = EncryptedTextField(_("secrets (encrypted JSON)"), blank=True, default="")
    enabled = models.BooleanField(_("enabled"), default=True)

    class Meta:
        verbose_name = _("channel")
        verbose_name_plural = _("channels")
        ordering = ["slug"]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"


class Customer(TimeStampedModel):
    """A customer on one channel. Personal data (nickname, phone, address, real name) is encrypted at rest; the
    phone has a keyed blind index (``phone_index``, HMAC of the normalised digits, see ``bots.pii``) for exact
    lookups. An erased customer (``erased_at``) stays as a tombstone so counts and rollups keep adding up."""

    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="customers", verbose_name=_("channel"))
    external_id = models.CharField(_("external id"), max_length=128)
    nickname = EncryptedTextField(_("nickname"), blank=True, default="")
    phone = EncryptedCharField(_("phone"), blank=True, default="")
    phone_index = models.CharField(
        _("phone blind index"), max_length=64, blank=True, default="", db_index=True, editable=False
    )
    address = EncryptedTextField(_("address"), blank=True, default="")
    real_name = EncryptedCharField(_("real name"), blank=True, default="")
    unsubscribed_at = models.DateTimeField(
        _("unsubscribed at"),
        null=True,
        blank=True,
        help_text=_("Set when the customer unsubscribed: no proactive messages are sent to them."),
    )
    erased_at = models.DateTimeField(_("erased at"), null=True, blank=True, db_index=True)

    class Meta:
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        constraints = [models.UniqueConstraint(fields=["channel", "external_id"], name="uniq_customer_per_channel")]
        permissions = [
            ("export_customer", _("Can export a customer's personal data")),
            ("erase_customer", _("Can erase a customer's personal data")),
        ]

    def __str__(self) -> str:
        return self.nickname or self.external_id

    def save(self, *args, **kwargs):
        # a derived column, kept in step with the phone wherever the row is saved (not business logic)
        from bots.pii import phone_blind_index

        self.phone_index = phone_blind_index(self.phone)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "phone" in update_fields and "phone_index" not in update_fields:
            kwargs["update_fields"] = [*update_fields, "phone_index"]
        super().save(*args, **kwargs)


class Conversation(TimeStampedModel):
    class Status(models.TextChoices):
        BOT = "bot", _("Bot")
        QUEUED = "queued", _("Queued for an agent")
        HUMAN = "human", _("With an agent")
        RESOLVED = "resolved", _("Resolved")

    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="conversations", verbose_name=_("customer")
    )
    channel = models.ForeignKey(
        Channel, on_delete=models.PROTECT, related_name="conversations", verbose_name=_("channel")
    )
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.BOT, db_index=True)
    last_message_at = models.DateTimeField(_("last message at"), null=True, blank=True, db_index=True)
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)

    class Meta:
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")
        ordering = ["-last_message_at", "-id"]
        indexes = [models.Index(fields=["customer", "-created_at"], name="conv_customer_recent")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.customer}"


class Message(models.Model):
    class Direction(models.TextChoices):
        IN = "in", _("Inbound")
        OUT = "out", _("Outbound")

    class Sender(models.TextChoices):
        CUSTOMER = "customer", _("Customer")
        BOT = "bot", _("Bot")
        AGENT = "agent", _("Agent")
        SYSTEM = "system", _("System")

    class Type(models.TextChoices):
        TEXT = "text", _("Text")
        IMAGE = "image", _("Image")
        VOICE = "voice", _("Voice")
        VIDEO = "video", _("Video")
        LOCATION = "location", _("Location")
        LINK = "link", _("Link")
        FILE = "file", _("File")
        EVENT = "event", _("Event")
        UNSUPPORTED = "unsupported", _("Unsupported")

    class Status(models.TextChoices):
        RECEIVED = "received", _("Received")
        PROCESSED = "processed", _("Processed")
        PENDING = "pending", _("Pending delivery")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        BLOCKED = "blocked", _("Blocked")

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages", verbose_name=_("conversation")
    )
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="messages", verbose_name=_("channel"))
    direction = models.CharField(_("direction"), max_length=3, choices=Direction.choices)
    sender = models.CharField(_("sender"), max_length=16, choices=Sender.choices)
    type = models.CharField(_("type"), max_length=16, choices=Type.choices, default=Type.TEXT)
    content = EncryptedTextField(_("content"), blank=True, default="")
    meta = models.JSONField(_("metadata"), default=dict, blank=True)
    trace = models.JSONField(_("decision trace"), null=True, blank=True)
    external_id = models.CharField(_("external id"), max_length=128, null=True, blank=True)  # noqa: DJ001 (NULL = no id)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, db_index=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)
    reply_to = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="replies", verbose_name=_("reply to")
    )
    redacted_at = models.DateTimeField(
        _("content removed at"),
        null=True,
        blank=True,
        help_text=_("Set when the retention policy or an erasure replaced the content."),
    )

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "external_id"],
                condition=Q(external_id__isnull=False),
                name="uniq_message_external_id_per_channel",
            )
        ]
        indexes = [
            models.Index(fields=["created_at"], condition=Q(direction="in", status="received"), name="msg_unprocessed"),
            models.Index(fields=["created_at"], condition=Q(redacted_at__isnull=True), name="msg_not_redacted"),
        ]

    def __str__(self) -> str:
        return f"{self.direction}#{self.pk}"


class Outbox(TimeStampedModel):
    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed (will retry)")
        DEAD = "dead", _("Dead (gave up)")
        HELD = "held", _("Held (rate limit)")
        BLOCKED = "blocked", _("Blocked (policy)")

    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="outbox", verbose_name=_("message"))
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="outbox", verbose_name=_("channel"))
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True, db_index=True)
    last_error = models.TextField(_("last error"), blank=True, default="")
    idempotency_key = models.CharField(_("idempotency key"), max_length=64, unique=True)
    reason = models.CharField(
        _("reason"), max_length=64, blank=True, default="", help_text=_("Why the entry is held or blocked.")
    )
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)

    class Meta:
        verbose_name = _("outbox entry")
        verbose_name_plural = _("outbox")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"outbox#{self.pk} {self.status}"


class ChannelCursor(TimeStampedModel):
    """Where a pull-based channel (WeCom sync_msg) stopped reading; one row per channel and account."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="cursors", verbose_name=_("channel"))
    key = models.CharField(_("key"), max_length=128, help_text=_("e.g. the open_kfid of a WeCom account"))
    cursor = models.CharField(_("cursor"), max_length=256, blank=True, default="")
    pages = models.PositiveIntegerField(_("pages read"), default=0)

    class Meta:
        verbose_name = _("channel cursor")
        verbose_name_plural = _("channel cursors")
        constraints = [models.UniqueConstraint(fields=["channel", "key"], name="uniq_cursor_per_channel_key")]

    def __str__(self) -> str:
        return f"{self.channel.slug}:{self.key}"


def channel_config(channel: Channel) -> dict:
    """Settings and decrypted secrets of a channel, merged: what its adapter is built with."""
    import json

    secrets = json.loads(channel.secrets) if channel.secrets else {}
    return {**channel.settings, **secrets}


def adapter_config(channel: Channel) -> dict:
    """``channel_config`` plus the deployment defaults an adapter needs: the WeChat / WeCom API base URL comes
    from ``settings.WECHAT_API_BASE`` / ``settings.WECOM_API_BASE`` unless the channel sets ``api_base``."""
    from django.conf import settings

    config = channel_config(channel)
    defaults = {Channel.Kind.OA: "WECHAT_API_BASE", Channel.Kind.KF: "WECOM_API_BASE"}
    if channel.kind in defaults and not config.get("api_base"):
        base = getattr(settings, defaults[channel.kind], "")
        if base:
            config["api_base"] = base
    return config
