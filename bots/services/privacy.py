"""PIPL rights and retention: a customer's data export (JSON files in a ZIP), their erasure, the retention purge of
old message content, and the audit entry for an agent's view of personal data.

* ``customer_export`` → bytes of a ZIP: ``manifest.json``, ``profile.json`` (customer, person, tags),
  ``conversations.json``, ``messages.json`` (decrypted), ``tickets.json`` (history), ``notes.json``,
  ``csat.json``, ``orders.json``, ``audit.json`` (who exported/erased/viewed/changed this customer, when).
* ``customer_erase`` → the customer row stays as a tombstone (``erased_at``; personal fields blank, external id
  replaced), every message's content becomes the placeholder "[deleted]" (translated: "[已删除]"), decision traces
  keep only what rollups count, ticket notes and the person's name/note are removed, order items keep SKUs and
  quantities; dialogue context and realtime backlogs in Redis are deleted after commit. Counts, CSAT scores,
  order amounts and the analytics rollups stay. Calling it again changes nothing more (idempotent).
* ``messages_purge_expired`` → the same content replacement for every message older than
  ``KEFU_RETENTION_DAYS`` (default 180), in batches of committed transactions (resumable: a purged row has
  ``redacted_at`` and is never selected again).

Export and erasure write one audit entry each (who, what, when, counts before/after, never plaintext)."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import zipfile
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _
from redis.exceptions import RedisError

from bots import pii
from bots.models import Conversation, Customer, Message, Outbox
from bots.services.common import DELIVERY_META_KEYS
from core import audit
from core import redis as kredis
from core.errors import ApplicationError
from core.models import AuditLog

logger = logging.getLogger(__name__)

PLACEHOLDER = _("[deleted]")
EXPORT_FORMAT = 1
ACTION_EXPORT = audit.Action.EXPORT
ACTION_ERASE = "erase"
ACTION_PII_VIEW = "pii_view"
REASON_ERASED = "erased"  # Outbox.reason of a reply that was not sent when its customer was erased
PII_FIELDS = ("nickname", "phone", "address", "real_name")
# decision-trace keys the analytics rollups read (analytics/facts.py); everything else may quote the customer
TRACE_KEEP = frozenset(
    {
        "kind",
        "stage",
        "intent",
        "intent_id",
        "faq_id",
        "rule_id",
        "product_id",
        "elapsed_ms",
        "handoff",
        "handoff_reason",
        "routing",
        "ticket_id",
        "agent_id",
        "confidence",
        "command",
        "event",
    }
)


def placeholder() -> str:
    """The text that replaces removed content, in the shop's language."""
    with translation.override(settings.LANGUAGE_CODE):
        return str(PLACEHOLDER)


def retention_days() -> int:
    return int(getattr(settings, "KEFU_RETENTION_DAYS", 180))


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def _json(data: Any) -> bytes:
    return json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2).encode()


def _target(customer_id: int) -> Customer:
    """An unsaved stand-in for the audit target: the id without the customer's name in ``target_repr``."""
    return Customer(pk=customer_id, external_id=f"#{customer_id}")


def _customer_or_404(customer_id: int, *, lock: bool = False) -> Customer:
    qs = Customer.objects.select_related("channel")
    if lock:
        qs = qs.select_for_update(of=("self",))
    customer = qs.filter(pk=customer_id).first()
    if customer is None:
        raise ApplicationError("unknown customer", code="not_found", status=404)
    return customer


# --- reads ---------------------------------------------------------------------------------------------------


def customers_with_phone(phone: str) -> QuerySet[Customer]:
    """Exact lookup through the blind index (any formatting of the number: spaces, dashes, +86)."""
    index = pii.phone_blind_index(phone)
    return Customer.objects.filter(phone_index=index) if index else Customer.objects.none()


def customer_counts(customer_id: int) -> dict[str, int]:
    """What a customer has, as numbers only (for audit entries: never plaintext)."""
    from routing.services.privacy import customer_routing_counts

    messages = Message.objects.filter(conversation__customer_id=customer_id)
    return {
        "conversations": Conversation.objects.filter(customer_id=customer_id).count(),
        "messages": messages.count(),
        "messages_with_content": messages.filter(redacted_at__isnull=True).count(),
        **customer_routing_counts(customer_id=customer_id),
    }


def _profile(customer: Customer) -> dict[str, Any]:
    return {
        "id": customer.pk,
        "channel": customer.channel.slug,
        "channel_kind": customer.channel.kind,
        "external_id": customer.external_id,
        "nickname": customer.nickname,
        "phone": customer.phone,
        "address": customer.address,
        "real_name": customer.real_name,
        "created_at": _iso(customer.created_at),
        "unsubscribed_at": _iso(customer.unsubscribed_at),
        "erased_at": _iso(customer.erased_at),
    }


def _messages(customer_id: int) -> list[dict[str, Any]]:
    delivery = dict(
        Outbox.objects.filter(message__conversation__customer_id=customer_id).values_list("message_id", "status")
    )
    rows = (
        Message.objects.filter(conversation__customer_id=customer_id)
        .order_by("created_at", "id")
        .only("id", "conversation_id", "direction", "sender", "type", "content", "status", "created_at", "redacted_at")
    )
    return [
        {
            "id": m.pk,
            "conversation_id": m.conversation_id,
            "direction": m.direction,
            "sender": m.sender,
            "type": m.type,
            "content": m.content,
            "status": m.status,
            "delivery": delivery.get(m.pk),
            "created_at": _iso(m.created_at),
            "content_removed_at": _iso(m.redacted_at),
        }
        for m in rows.iterator(chunk_size=500)
    ]


def _audit_trail(customer_id: int) -> list[dict[str, Any]]:
    rows = AuditLog.objects.filter(target_model=Customer._meta.label_lower, target_pk=str(customer_id)).order_by(
        "created_at", "id"
    )
    return [
        {"time": _iso(e.created_at), "action": e.action, "by": e.actor_username or None}
        for e in rows.only("created_at", "action", "actor_username")
    ]


# --- export --------------------------------------------------------------------------------------------------


@transaction.atomic
def customer_export(*, customer_id: int, actor, request=None) -> bytes:
    """All the data Kefu holds about one customer, as JSON files in a ZIP (bytes). Audited."""
    from routing.services.privacy import customer_routing_export

    customer = _customer_or_404(customer_id)
    routing_data = customer_routing_export(customer_id=customer_id)
    conversations = [
        {
            "id": c.pk,
            "channel": c.channel.slug,
            "status": c.status,
            "created_at": _iso(c.created_at),
            "last_message_at": _iso(c.last_message_at),
            "resolved_at": _iso(c.resolved_at),
        }
        for c in Conversation.objects.filter(customer_id=customer_id).select_related("channel").order_by("id")
    ]
    messages = _messages(customer_id)
    tickets = routing_data["tickets"]
    notes = [
        {"ticket_id": t["id"], **{k: e[k] for k in ("kind", "text", "created_at")}}
        for t in tickets
        for e in t["events"]
        if e["text"]
    ]
    csat = [
        {"ticket_id": t["id"], **t["csat"]} for t in tickets if t["csat"]["state"] or t["csat"]["score"] is not None
    ]
    profile = {"customer": _profile(customer), "person": routing_data["person"]}
    files = {
        "profile.json": profile,
        "conversations.json": conversations,
        "messages.json": messages,
        "tickets.json": tickets,
        "notes.json": notes,
        "csat.json": csat,
        "orders.json": routing_data["orders"],
        "audit.json": _audit_trail(customer_id),
    }
    counts = {
        "conversations": len(conversations),
        "messages": len(messages),
        "tickets": len(tickets),
        "notes": len(notes),
        "csat": len(csat),
        "orders": len(routing_data["orders"]),
    }
    now = timezone.now()
    manifest = {
        "format": EXPORT_FORMAT,
        "customer_id": customer_id,
        "generated_at": now.isoformat(),
        "generated_by": getattr(actor, "get_username", lambda: str(actor or ""))(),
        "files": sorted(files),
        "counts": counts,
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", _json(manifest))
        for name, data in files.items():
            archive.writestr(name, _json(data))
    audit.audit_record(
        actor=actor,
        action=ACTION_EXPORT,
        target=_target(customer_id),
        after={"format": "zip", "files": ["manifest.json", *files], "counts": counts},
        request=request,
    )
    logger.info("customer exported", extra={"customer_id": customer_id, **counts})
    return buffer.getvalue()


# --- erasure ------------------------------------------------------------------------------------------------


def _scrub_trace(trace: Any) -> Any:
    if not isinstance(trace, dict):
        return None
    kept = {k: v for k, v in trace.items() if k in TRACE_KEEP and not isinstance(v, dict | list)}
    products = (trace.get("entities") or {}).get("products") if isinstance(trace.get("entities"), dict) else None
    if isinstance(products, list):
        kept["entities"] = {"products": [p for p in products if isinstance(p, int | str)]}
    return kept


def _scrub_meta(meta: Any) -> dict:
    return {k: meta[k] for k in DELIVERY_META_KEYS if isinstance(meta, dict) and meta.get(k)}


def _redact_messages(ids: list[int], *, now: dt.datetime, text: str) -> int:
    """Replace content (and meta/trace beyond what delivery and rollups need) of the given messages."""
    rows = list(Message.objects.filter(pk__in=ids).only("id", "meta", "trace"))
    for row in rows:
        row.content = text
        row.meta = _scrub_meta(row.meta)
        row.trace = _scrub_trace(row.trace)
        row.redacted_at = now
    Message.objects.bulk_update(rows, ["content", "meta", "trace", "redacted_at"], batch_size=500)
    return len(rows)


def _forget_in_redis(customer_id: int, conversation_ids: list[int]) -> None:
    """Dialogue context and the realtime replay backlogs that may quote the customer (after commit)."""
    from knowledge.context import context_key  # knowledge's documented key: kefu:ctx:<conversation>

    try:
        client = kredis.client()
        keys = [context_key(c) for c in conversation_ids]
        keys += [kredis.key("rt", "log", f"conversation.{c}") for c in conversation_ids]
        keys.append(kredis.key("rt", "log", f"customer.{customer_id}"))
        if keys:
            client.delete(*keys)
        # other backlogs (agents, supervisors, queues) may carry a message of these conversations
        wanted = set(conversation_ids)
        for log_key in client.scan_iter(match=kredis.key("rt", "log", "*"), count=500):
            stale = []
            for member in client.zrange(log_key, 0, -1):
                try:
                    payload = json.loads(member).get("payload") or {}
                except ValueError:
                    continue
                if payload.get("conversation_id") in wanted or payload.get("customer_id") == customer_id:
                    stale.append(member)
            if stale:
                client.zrem(log_key, *stale)
    except RedisError:  # everything there expires by itself (context TTL, backlog 24 h)
        logger.warning("erasure could not clear Redis", exc_info=True, extra={"customer_id": customer_id})


@transaction.atomic
def customer_erase(*, customer_id: int, actor, reason: str, request=None) -> dict[str, Any]:
    """Erase a customer's personal data (see the module doc). Returns ``{"customer_id", "erased_at",
    "already_erased", "before", "after", "changed"}`` with counts only. Audited, idempotent."""
    from routing.services.privacy import customer_routing_erase

    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError("give a reason for the erasure", code="reason_required")
    customer = _customer_or_404(customer_id, lock=True)
    already = customer.erased_at is not None
    before = customer_counts(customer_id)
    now = timezone.now()
    text = placeholder()
    conversation_ids = list(Conversation.objects.filter(customer_id=customer_id).values_list("id", flat=True))
    todo = list(
        Message.objects.filter(conversation_id__in=conversation_ids, redacted_at__isnull=True).values_list(
            "id", flat=True
        )
    )
    # replies not sent yet would carry the placeholder to the customer: they never go
    unsent = Outbox.objects.filter(
        message__conversation_id__in=conversation_ids,
        status__in=[Outbox.Status.PENDING, Outbox.Status.FAILED, Outbox.Status.HELD],
    )
    unsent_ids = list(unsent.values_list("message_id", flat=True))
    changed = {
        "messages": 0,
        "unsent_blocked": unsent.update(status=Outbox.Status.BLOCKED, reason=REASON_ERASED, updated_at=now),
    }
    Message.objects.filter(pk__in=unsent_ids).update(status=Message.Status.BLOCKED)
    for start in range(0, len(todo), 500):
        changed["messages"] += _redact_messages(todo[start : start + 500], now=now, text=text)
    changed.update(customer_routing_erase(customer_id=customer_id, placeholder=text))
    pii_set = [f for f in PII_FIELDS if getattr(customer, f)]
    changed["customer_fields"] = len(pii_set)
    customer.nickname = customer.phone = customer.address = customer.real_name = ""
    if not already:
        customer.external_id = f"erased-{customer.pk}"
        customer.erased_at = now
    customer.save()
    after = customer_counts(customer_id)
    result = {
        "customer_id": customer_id,
        "erased_at": customer.erased_at,
        "already_erased": already,
        "before": before,
        "after": after,
        "changed": changed,
    }
    audit.audit_record(
        actor=actor,
        action=ACTION_ERASE,
        target=_target(customer_id),
        before={"counts": before, "personal_fields": pii_set},
        after={"counts": after, "changed": changed, "already_erased": already, "reason": reason[:500]},
        request=request,
    )
    transaction.on_commit(lambda: _forget_in_redis(customer_id, conversation_ids))
    logger.info("customer erased", extra={"customer_id": customer_id, "already_erased": already, **changed})
    return result


# --- retention -----------------------------------------------------------------------------------------------


def messages_purge_expired(
    *, now: dt.datetime | None = None, days: int | None = None, batch: int = 500, dry_run: bool = False
) -> dict[str, Any]:
    """Replace the content of every message older than the retention period (``KEFU_RETENTION_DAYS``) with the
    placeholder, ``batch`` rows per committed transaction; rows locked by someone else are left for the next
    run. Conversations, messages (as rows), traces' counted keys and rollups stay. Returns
    ``{"cutoff", "days", "purged" (or "would_purge" in a dry run), "batches"}``."""
    days = retention_days() if days is None else days
    if days < 1:
        raise ApplicationError("the retention period is at least one day", code="bad_retention")
    now = now or timezone.now()
    cutoff = now - dt.timedelta(days=days)
    expired = Message.objects.filter(created_at__lt=cutoff, redacted_at__isnull=True)
    if dry_run:
        return {"cutoff": cutoff, "days": days, "would_purge": expired.count(), "batches": 0}
    text = placeholder()
    purged = batches = 0
    last_id = 0
    while True:
        with transaction.atomic():
            ids = list(
                expired.filter(pk__gt=last_id)
                .order_by("pk")
                .select_for_update(skip_locked=True)
                .values_list("id", flat=True)[:batch]
            )
            if not ids:
                break
            purged += _redact_messages(ids, now=timezone.now(), text=text)
        batches += 1
        last_id = ids[-1]
    if purged:
        audit.audit_record(
            actor="retention",
            action="retention_purge",
            target=Message,
            after={"cutoff": cutoff.isoformat(), "days": days, "purged": purged},
        )
    logger.info("retention purge", extra={"purged": purged, "batches": batches, "cutoff": cutoff.isoformat()})
    return {"cutoff": cutoff, "days": days, "purged": purged, "batches": batches}


# --- views of personal data -----------------------------------------------------------------------------------


def customer_pii_view_record(*, customer_id: int, actor, fields: list[str], via: str, request=None) -> None:
    """Record that ``actor`` was shown a customer's personal data (which fields, where)."""
    if not fields:
        return
    audit.audit_record(
        actor=actor,
        action=ACTION_PII_VIEW,
        target=_target(customer_id),
        after={"fields": sorted(fields), "via": via},
        request=request,
    )


def customer_pii(customer: Customer) -> dict[str, str]:
    """The personal fields an agent's customer panel shows (decrypted)."""
    return {"phone": customer.phone, "address": customer.address, "real_name": customer.real_name}
