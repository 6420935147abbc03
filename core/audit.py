"""The audit trail: ``audit_record`` writes one append-only ``AuditLog`` row; ``snapshot``/``diff`` turn model
instances into JSON with secrets redacted. The admin side (``AuditedModelAdmin``, ``audited_action``) is in
``core/admin.py``.

What never reaches the log: values of encrypted fields (``EncryptedTextField`` and subclasses) and of fields whose
name says secret (``password``, ``secret``, ``token``, ``*_key``, ...). For those the log says ``"<set>"`` on
creation, ``"<redacted>"`` before and ``"<changed>"`` after a change (the values are compared in memory only).
Everything else that is recorded (``target_repr``, ``before``, ``after``) is encrypted at rest."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from itertools import chain
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from core.fields import EncryptedTextField
from core.models import AuditLog

logger = logging.getLogger("kefu.audit")

REDACTED = "<redacted>"
CHANGED = "<changed>"
SET = "<set>"
# a field whose name has one of these words (split on "_") is a secret: app_secret, aes_key, password, token
SECRET_WORDS = frozenset(
    {"password", "passwd", "secret", "secrets", "token", "tokens", "key", "keys", "salt", "signature", "credential"}
)
MAX_TEXT = 2000  # longer strings are cut in the log
MAX_RELATED = 200  # m2m members / inline rows kept per field


class Action:
    CREATE = "create"
    CHANGE = "change"
    DELETE = "delete"
    PASSWORD_CHANGE = "password_change"
    IMPORT = "import"
    EXPORT = "export"


class Secret:
    """A sensitive value inside a snapshot: compared in memory, never serialised (it becomes "<redacted>")."""

    __slots__ = ("_value",)

    def __init__(self, value: Any) -> None:
        self._value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and self._value == other._value

    def __hash__(self) -> int:
        return hash(repr(self._value))

    def __bool__(self) -> bool:
        return self._value not in (None, "", b"", {}, [])

    def __repr__(self) -> str:
        return REDACTED


def is_secret_field(field: models.Field, extra: Iterable[str] = ()) -> bool:
    if isinstance(field, EncryptedTextField) or field.name in extra:
        return True
    return bool(set(field.name.lower().split("_")) & SECRET_WORDS)


def _plain(value: Any) -> Any:
    """A JSON-safe copy: strings cut at MAX_TEXT, dates/decimals/UUIDs as text."""
    if isinstance(value, Secret):
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else f"{value[:MAX_TEXT]}… ({len(value)} chars)"
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, models.Model):
        return str(value)
    if hasattr(value, "name") and hasattr(value, "storage"):  # FieldFile
        return value.name or ""
    try:
        return json.loads(json.dumps(value, cls=DjangoJSONEncoder))
    except TypeError:
        return str(value)


def snapshot(instance: models.Model, *, exclude: Iterable[str] = (), sensitive: Iterable[str] = ()) -> dict[str, Any]:
    """The editable fields of ``instance`` (as ``model_to_dict`` sees them; many-to-many as the sorted names of
    the members), secrets wrapped in ``Secret``."""
    exclude, sensitive = set(exclude), set(sensitive)
    opts = instance._meta
    data: dict[str, Any] = {}
    for field in chain(opts.concrete_fields, opts.private_fields, opts.many_to_many):
        if not getattr(field, "editable", False) or field.name in exclude:
            continue
        if field.many_to_many:
            members = list(getattr(instance, field.name).all()[: MAX_RELATED + 1]) if instance.pk else []
            value: Any = sorted(str(m) for m in members[:MAX_RELATED])
        else:
            value = field.value_from_object(instance)
        data[field.name] = Secret(value) if is_secret_field(field, sensitive) else _plain(value)
    return data


def _public(value: Any, *, secret_as: str) -> Any:
    if isinstance(value, Secret):
        return secret_as if value else ""
    if isinstance(value, dict):
        return {k: _public(v, secret_as=secret_as) for k, v in value.items()}
    if isinstance(value, list):
        return [_public(v, secret_as=secret_as) for v in value]
    return value


def redacted(data: dict[str, Any] | None, *, secret_as: str = REDACTED) -> dict[str, Any]:
    """``data`` ready to store: every ``Secret`` replaced by ``secret_as`` (or "" when it was empty)."""
    return _public(_plain(data or {}), secret_as=secret_as)


def diff(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fields that differ, as (old values, new values), ready to store."""
    old, new = {}, {}
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if a == b:
            continue
        if isinstance(a, Secret) or isinstance(b, Secret):
            old[key], new[key] = REDACTED, CHANGED
        else:
            old[key], new[key] = redacted({"v": a})["v"], redacted({"v": b})["v"]
    return old, new


def _target(target) -> tuple[str, str, str]:
    if target is None:
        return "", "", ""
    if isinstance(target, type) and issubclass(target, models.Model):
        return target._meta.label_lower, "", ""
    if isinstance(target, models.Model):
        return target._meta.label_lower, "" if target.pk is None else str(target.pk), str(target)[:500]
    return str(target)[:100], "", ""


def _actor(actor) -> tuple[int | None, str]:
    if actor is None:
        return None, ""
    if isinstance(actor, str):  # a system actor: "retention", "celery:rfm_recompute"
        return None, actor[:150]
    if getattr(actor, "is_authenticated", False):
        return actor.pk, actor.get_username()
    return None, ""


def audit_record(
    *,
    actor=None,
    action: str,
    target=None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    request=None,
) -> AuditLog:
    """Append one row to the audit log and return it.

    ``actor``: a user, a string naming a system actor, or None (then the request's user, if any). ``target``: a
    model instance, a model class (bulk operations) or a label. ``before``/``after``: JSON-able dicts (e.g. from
    ``snapshot``/``diff``); ``Secret`` values are stored as "<redacted>". ``request`` gives the IP and request id.
    Call it inside the transaction of the change it records, so a rolled-back change leaves no row."""
    from core.security import client_ip

    if actor is None and request is not None:
        actor = getattr(request, "user", None)
    actor_id, username = _actor(actor)
    target_model, target_pk, target_repr = _target(target)
    entry = AuditLog.objects.create(
        actor_id=actor_id,
        actor_username=username,
        action=action[:64],
        target_model=target_model,
        target_pk=target_pk[:64],
        target_repr=target_repr,
        before=redacted(before),
        after=redacted(after, secret_as=SET),
        ip=client_ip(request) if request is not None else None,
        request_id=(getattr(request, "request_id", "") or "")[:64] if request is not None else "",
    )
    logger.info(
        "audit",
        extra={
            "audit_id": entry.pk,
            "action": entry.action,
            "target": f"{target_model}:{target_pk}",
            "actor": username,
        },
    )
    return entry


def audit_changes(
    *, actor=None, action: str = Action.CHANGE, target, before: dict[str, Any], after: dict[str, Any], request=None
) -> AuditLog | None:
    """Record the difference between two snapshots; nothing when nothing changed."""
    old, new = diff(before, after)
    if not old and not new:
        return None
    return audit_record(actor=actor, action=action, target=target, before=old, after=new, request=request)
