"""Outbound half of the message path: the one entry point for outgoing messages, the outbox sender."""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from bots.channels.base import OutgoingMessage, SendError
from bots.models import Conversation, Message, Outbox, channel_config
from bots.services.common import publish_message
from core import logging as klog
from core import realtime

logger = logging.getLogger(__name__)

MAX_SEND_ATTEMPTS = 8


def reply_queue(
    *,
    conversation: Conversation,
    text: str,
    sender: str = Message.Sender.BOT,
    trace: dict | None = None,
    reply_to: Message | None = None,
) -> Message:
    """The one entry point for outgoing messages: a Message(out) plus its Outbox row, sent after commit."""
    with transaction.atomic():
        message = Message.objects.create(
            conversation=conversation,
            channel=conversation.channel,
            direction=Message.Direction.OUT,
            sender=sender,
            type=Message.Type.TEXT,
            content=text,
            trace=trace,
            status=Message.Status.PENDING,
            reply_to=reply_to,
        )
        outbox = Outbox.objects.create(message=message, channel=conversation.channel, idempotency_key=uuid.uuid4().hex)
        Conversation.objects.filter(pk=conversation.pk).update(last_message_at=timezone.now())
        publish_message(message, conversation.customer_id)
        transaction.on_commit(lambda: _queue_send(outbox.id))
    return message


def _queue_send(outbox_id: int) -> None:
    from bots.tasks import send_outbox

    try:
        send_outbox.delay(outbox_id)
    except Exception:
        logger.exception("could not queue outbox", extra={"outbox_id": outbox_id})


def _backoff(attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(2**attempts, 3600))


def outbox_send(*, outbox_id: int) -> str:
    """Send one outbox row through its channel's adapter. Returns the row's final status.

    A row is claimed under a lock (pending/failed/held/sending → sending); the network call happens outside
    the transaction; the idempotency key stays the same across retries, so a redelivered task after a crash
    never makes the receiving side show the message twice.
    """
    from bots.channels.registry import adapter_for

    with transaction.atomic():
        outbox = (
            Outbox.objects.select_for_update(skip_locked=True)
            .select_related("message__conversation__customer", "channel")
            .filter(pk=outbox_id)
            .first()
        )
        if outbox is None:
            return "locked_or_missing"
        if outbox.status in (Outbox.Status.SENT, Outbox.Status.DEAD, Outbox.Status.BLOCKED):
            return outbox.status
        outbox.status = Outbox.Status.SENDING
        outbox.attempts += 1
        outbox.save(update_fields=["status", "attempts", "updated_at"])
    message = outbox.message
    customer = message.conversation.customer
    adapter = adapter_for(outbox.channel.kind, slug=outbox.channel.slug, config=channel_config(outbox.channel))
    with klog.bound(message_id=message.id, conversation_id=message.conversation_id, outbox_id=outbox.id):
        try:
            adapter.send(
                OutgoingMessage(
                    recipient_id=customer.external_id,
                    text=message.content,
                    idempotency_key=outbox.idempotency_key,
                    meta=message.meta,
                )
            )
        except SendError as exc:
            return _outbox_failed(outbox, exc)
        except Exception as exc:  # unknown failure: treat as retryable, never lose the row
            logger.exception("send crashed")
            return _outbox_failed(outbox, SendError(f"{type(exc).__name__}: {exc}"))
        with transaction.atomic():
            now = timezone.now()
            Outbox.objects.filter(pk=outbox.pk).update(
                status=Outbox.Status.SENT, sent_at=now, last_error="", updated_at=now
            )
            Message.objects.filter(pk=message.pk).update(status=Message.Status.SENT)
            message.status = Message.Status.SENT
            realtime.publish(
                realtime.conversation_group(message.conversation_id),
                "conversation.updated",
                {"conversation_id": message.conversation_id, "message_id": message.id, "delivery": "sent"},
            )
        logger.info("message sent")
        return Outbox.Status.SENT


def _outbox_failed(outbox: Outbox, exc: SendError) -> str:
    now = timezone.now()
    if not exc.retryable:
        status, message_status = Outbox.Status.BLOCKED, Message.Status.BLOCKED
    elif outbox.attempts >= MAX_SEND_ATTEMPTS:
        status, message_status = Outbox.Status.DEAD, Message.Status.FAILED
    else:
        status, message_status = Outbox.Status.FAILED, Message.Status.PENDING
    with transaction.atomic():
        Outbox.objects.filter(pk=outbox.pk).update(
            status=status,
            last_error=f"[{exc.code}] {exc.message}"[:2000],
            next_attempt_at=now + _backoff(outbox.attempts) if status == Outbox.Status.FAILED else None,
            updated_at=now,
        )
        Message.objects.filter(pk=outbox.message_id).update(status=message_status)
    logger.warning("send failed", extra={"status": status, "error": exc.message, "code": exc.code})
    return status


def sweep_outbox(*, limit: int = 500) -> list[int]:
    """Outbox rows due for a retry, or stuck in 'sending' after a worker died: queue them again."""
    now = timezone.now()
    stuck = now - dt.timedelta(minutes=5)
    pending_cutoff = now - dt.timedelta(seconds=settings.KEFU_SWEEP_AFTER_SECONDS)
    due = (
        Q(status__in=[Outbox.Status.FAILED, Outbox.Status.HELD], next_attempt_at__lte=now)
        | Q(status=Outbox.Status.PENDING, created_at__lte=pending_cutoff)
        | Q(status=Outbox.Status.SENDING, updated_at__lte=stuck)
    )
    ids = list(Outbox.objects.filter(due).values_list("id", flat=True)[:limit])
    for outbox_id in ids:
        _queue_send(outbox_id)
    return ids
