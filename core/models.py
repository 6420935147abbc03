import json

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core import crypto
from core.fields import EncryptedTextField


class TimeStampedModel(models.Model):
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        abstract = True


class EncryptedJSONField(EncryptedTextField):
    """A JSON value (dict, list, ...) stored as AES-GCM ciphertext of its JSON text."""

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return json.loads(crypto.keyring().decrypt(value))

    def to_python(self, value):
        if isinstance(value, str):
            text = crypto.keyring().decrypt(value) if crypto.is_encrypted(value) else value
            try:
                return json.loads(text) if text else text
            except ValueError as exc:
                raise ValidationError(_("Enter valid JSON.")) from exc
        return value

    def get_prep_value(self, value):
        if value is None:
            return None
        return crypto.keyring().encrypt(json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False, sort_keys=True))

    def value_to_string(self, obj):
        return json.dumps(self.value_from_object(obj), cls=DjangoJSONEncoder, ensure_ascii=False)


class AppendOnlyError(Exception):
    """An audit row was about to be changed or deleted."""


class AuditLogQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("the audit log is append-only")

    def delete(self):
        raise AppendOnlyError("the audit log is append-only")

    _raw_delete = delete


class AuditLog(models.Model):
    """One security-relevant event: who did what to which object, before/after. Append-only: the ORM refuses
    updates and deletes here, and PostgreSQL triggers (migration 0002) refuse UPDATE, DELETE and TRUNCATE.

    ``actor_id`` is a plain number, not a foreign key, so deleting a user never touches the log. ``target_repr``,
    ``before`` and ``after`` may hold personal data and are encrypted at rest; secrets never get in (see
    ``core.audit.snapshot``)."""

    created_at = models.DateTimeField(_("time"), default=timezone.now, db_index=True, editable=False)
    actor_id = models.PositiveBigIntegerField(_("user id"), null=True, blank=True, db_index=True, editable=False)
    actor_username = models.CharField(_("user"), max_length=150, blank=True, editable=False)
    action = models.CharField(_("action"), max_length=64, db_index=True, editable=False)
    target_model = models.CharField(_("object type"), max_length=100, blank=True, editable=False)
    target_pk = models.CharField(_("object id"), max_length=64, blank=True, editable=False)
    target_repr = EncryptedTextField(_("object"), blank=True, default="", editable=False)
    before = EncryptedJSONField(_("before"), blank=True, default=dict, editable=False)
    after = EncryptedJSONField(_("after"), blank=True, default=dict, editable=False)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True, editable=False)
    request_id = models.CharField(_("request id"), max_length=64, blank=True, editable=False)

    objects = AuditLogQuerySet.as_manager()

    class Meta:
        verbose_name = _("audit log entry")
        verbose_name_plural = _("audit log")
        ordering = ["-created_at", "-id"]
        # append-only: there is no add/change/delete permission to grant
        default_permissions = ("view",)
        indexes = [models.Index(fields=["target_model", "target_pk"], name="core_audit_target_idx")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_username or '-'} {self.action} {self.target_model}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("the audit log is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("the audit log is append-only")


# --- sensitive words (see core/sensitive.py and README "Sensitive words") -----------------------------------


class SensitiveAction(models.TextChoices):
    """What a hit of a word asks for; strength block > handoff > mask > flag (core.textfilter.Action)."""

    BLOCK = "block", _("Block")
    HANDOFF = "handoff", _("Hand off to a person")
    MASK = "mask", _("Mask with ＊")
    FLAG = "flag", _("Flag for review")


class SensitiveWordList(TimeStampedModel):
    """One word list: its own Aho-Corasick automaton, rebuilt in every process when ``version`` moves."""

    class Direction(models.TextChoices):
        BOTH = "both", _("Both ways")
        INBOUND = "in", _("Customer messages")
        OUTBOUND = "out", _("Bot and agent replies")

    name = models.CharField(_("name"), max_length=100, unique=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    direction = models.CharField(_("applies to"), max_length=4, choices=Direction.choices, default=Direction.BOTH)
    pinyin_initials = models.BooleanField(
        _("match pinyin initials"),
        default=False,
        help_text=_('Also match the initials of Chinese words ("微信" → "wx"). Short initials cause false hits.'),
    )
    allow_phrases = models.TextField(
        _("allowed phrases"),
        blank=True,
        default="",
        help_text=_("One phrase per line: a hit lying inside one of them is ignored (三级 inside 三级跳)."),
    )
    version = models.PositiveIntegerField(_("version"), default=1, editable=False)

    class Meta:
        verbose_name = _("sensitive word list")
        verbose_name_plural = _("sensitive word lists")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def allow_list(self) -> list[str]:
        return [line.strip() for line in (self.allow_phrases or "").splitlines() if line.strip()]


class SensitiveWord(models.Model):
    word_list = models.ForeignKey(
        SensitiveWordList, on_delete=models.CASCADE, related_name="words", verbose_name=_("word list")
    )
    text = models.CharField(_("word"), max_length=100)
    category = models.CharField(_("category"), max_length=50, blank=True, default="")
    action = models.CharField(_("action"), max_length=8, choices=SensitiveAction.choices, default=SensitiveAction.FLAG)
    enabled = models.BooleanField(_("enabled"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("sensitive word")
        verbose_name_plural = _("sensitive words")
        ordering = ["word_list", "text"]
        constraints = [models.UniqueConstraint(fields=["word_list", "text"], name="uniq_sensitive_word_per_list")]

    def __str__(self) -> str:
        return self.text


class SensitiveHit(models.Model):
    """A message or reply that hit sensitive words: what was hit and what was done, for operators to review.

    Messages and outbox rows are referenced by plain ids (core imports no other app); ``words`` holds list
    entries (``[{"word", "category", "action"}]``), never the customer's text."""

    class Direction(models.TextChoices):
        INBOUND = "in", _("Customer message")
        OUTBOUND = "out", _("Bot or agent reply")

    created_at = models.DateTimeField(_("time"), default=timezone.now, db_index=True)
    direction = models.CharField(_("direction"), max_length=3, choices=Direction.choices)
    action = models.CharField(_("action taken"), max_length=8, choices=SensitiveAction.choices, db_index=True)
    words = models.JSONField(_("words hit"), default=list)
    sender = models.CharField(_("sender"), max_length=16, blank=True, default="")
    conversation_id = models.PositiveBigIntegerField(_("conversation id"), null=True, blank=True, db_index=True)
    message_id = models.PositiveBigIntegerField(_("message id"), null=True, blank=True, db_index=True)
    outbox_id = models.PositiveBigIntegerField(_("outbox id"), null=True, blank=True)
    reviewed = models.BooleanField(_("reviewed"), default=False, db_index=True)
    reviewed_by = models.CharField(_("reviewed by"), max_length=150, blank=True, default="")
    reviewed_at = models.DateTimeField(_("reviewed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("sensitive word hit")
        verbose_name_plural = _("sensitive word hits")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.direction} {self.action} #{self.message_id}"
