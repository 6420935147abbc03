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
