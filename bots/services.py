"""Every write of the message path: receive, handle, reply, send."""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from bots.channels.base import InboundMessage, OutgoingMessage, SendError
from bots.models import Channel, Conversation, Customer, Message, Outbox, channel_config
from core import logging as klog
from core import realtime
from core.errors import ApplicationError
from knowledge import services as knowledge
from knowledge.decision import DecisionContext

logger = logging.getLogger(__name__)

MAX_SEND_ATTEMPTS = 8


def message_payload(message: Message) -> dict:
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "direction": message.direction,
        "sender": message.sender,
        "type": message.type,
        "content": message.content,
        "status": message.status,
        "created_at": message.created_at.isoformat(),
        "trace": message.trace,
    }


def _publish_message(message: Message, customer_id: int) -> None:
    payload = message_payload(message)
    realtime.publish(realtime.customer_group(customer_id), "message.created", payload)
    realtime.publish(realtime.conversation_group(message.conversation_id), "message.created", payload)


def _conversation_for(customer: Customer, now: dt.datetime) -> Conversation:
    """The customer's open conversation, or a new one after the inactivity window."""
    latest = Conversation.objects.select_for_update().filter(customer=customer).order_by("-id").first()
    idle = dt.timedelta(minutes=settings.KEFU_CONVERSATION_IDLE_MINUTES)
    if latest is not None:
        active = latest.last_message_at is None or now - latest.last_message_at < idle
        if latest.status in (Conversation.Status.QUEUED, Conversation.Status.HUMAN) or active:
            if latest.status == Conversation.Status.RESOLVED:
                latest.status = Conversation.Status.BOT
                latest.resolved_at = None
            return latest
    return Conversation.objects.create(customer=customer, channel=customer.channel, status=Conversation.Status.BOT)


@transaction.atomic
def message_receive(*, channel: Channel, inbound: InboundMessage) -> tuple[Message, bool]:
    """Store one inbound message exactly once and queue its processing after commit.

    Returns ``(message, created)``; a message already seen (same channel and external id) is returned as is
    with ``created=False`` and queues nothing.
    """
    if not inbound.external_id:
        raise ApplicationError("inbound message without an external id", code="missing_external_id")
    existing = Message.objects.filter(channel=channel, external_id=inbound.external_id).first()
    if existing is not None:
        return existing, False
    customer, _ = Customer.objects.get_or_create(
        channel=channel, external_id=inbound.sender_id, defaults={"nickname": inbound.nickname}
    )
    customer = Customer.objects.select_for_update().get(pk=customer.pk)  # one writer per customer at a time
    if inbound.nickname and inbound.nickname != customer.nickname:
        customer.nickname = inbound.nickname
        customer.save(update_fields=["nickname", "updated_at"])
    now = timezone.now()
    conversation = _conversation_for(customer, now)
    try:
        with transaction.atomic():
            message = Message.objects.create(
                conversation=conversation,
                channel=channel,
                direction=Message.Direction.IN,
                sender=Message.Sender.CUSTOMER,
                type=inbound.type if inbound.type in Message.Type.values else Message.Type.UNSUPPORTED,
                content=inbound.text,
                meta=inbound.meta,
                external_id=inbound.external_id,
                status=Message.Status.RECEIVED,
            )
    except IntegrityError:  # a concurrent delivery of the same message won the race
        return Message.objects.get(channel=channel, external_id=inbound.external_id), False
    conversation.last_message_at = now
    conversation.save(update_fields=["last_message_at", "status", "resolved_at", "updated_at"])
    _publish_message(message, customer.id)
    logger.info("message received", extra={"message_id": message.id, "conversation_id": conversation.id})
    transaction.on_commit(lambda: _queue_processing(message.id))
    return message, True


def _queue_processing(message_id: int) -> None:
    from bots.tasks import process_message

    try:
        process_message.delay(message_id)
    except Exception:  # broker down: the message is stored; the sweeper queues it again later
        logger.exception("could not queue message", extra={"message_id": message_id})


@transaction.atomic
def conversation_handle(*, message_id: int) -> Message | None:
    """Decide and queue the reply to one inbound message; a second call for the same message does nothing.

    Returns the reply message, or None when nothing was sent (already processed, with a human, ignored).
    """
    message = (
        Message.objects.select_for_update(of=("self",))
        .select_related("conversation__customer", "channel")
        .filter(pk=message_id, direction=Message.Direction.IN)
        .first()
    )
    if message is None or message.status != Message.Status.RECEIVED:
        return None
    conversation = Conversation.objects.select_for_update().get(pk=message.conversation_id)
    customer = message.conversation.customer
    with klog.bound(message_id=message.id, conversation_id=conversation.id):
        message.status = Message.Status.PROCESSED
        message.processed_at = timezone.now()
        reply = None
        if conversation.status in (Conversation.Status.QUEUED, Conversation.Status.HUMAN):
            message.trace = {"kind": "human", "stage": "with_agent"}
        else:
            decision = knowledge.decide(
                text=message.content,
                context=DecisionContext(
                    conversation_id=conversation.id,
                    channel_slug=message.channel.slug,
                    nickname=customer.nickname,
                    message_type=message.type,
                ),
            )
            message.trace = decision.trace
            if decision.reply:
                reply = reply_queue(
                    conversation=conversation, text=decision.reply, trace=decision.trace, reply_to=message
                )
            logger.info("message decided", extra={"kind": decision.kind, "elapsed_ms": decision.trace["elapsed_ms"]})
        message.save(update_fields=["status", "processed_at", "trace"])
        return reply


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
        _publish_message(message, conversation.customer_id)
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


def sweep_unprocessed(*, older_than_seconds: int | None = None, limit: int = 500) -> list[int]:
    """Inbound messages stored but never processed (queue lost, worker crash): queue them again."""
    age = older_than_seconds if older_than_seconds is not None else settings.KEFU_SWEEP_AFTER_SECONDS
    cutoff = timezone.now() - dt.timedelta(seconds=age)
    ids = list(
        Message.objects.filter(
            direction=Message.Direction.IN, status=Message.Status.RECEIVED, created_at__lte=cutoff
        ).values_list("id", flat=True)[:limit]
    )
    for message_id in ids:
        _queue_processing(message_id)
    return ids


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


@transaction.atomic
def web_customer_create(*, channel: Channel, nickname: str) -> Customer:
    if channel.kind != Channel.Kind.WEB:
        raise ApplicationError("customers can only be created on a web channel", code="wrong_channel")
    return Customer.objects.create(channel=channel, external_id=f"web-{uuid.uuid4().hex[:16]}", nickname=nickname)
