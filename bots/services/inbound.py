"""Inbound half of the message path: receive (store once, queue), handle (decide, reply), sweep."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
import uuid

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from redis.exceptions import RedisError

from bots.channels.base import InboundMessage
from bots.models import Channel, Conversation, Customer, Message, Outbox
from bots.services import screening, subscription
from bots.services.common import publish_message
from bots.services.outbound import reply_queue
from core import fastsql, realtime
from core import logging as klog
from core import redis as kredis
from core.errors import ApplicationError
from knowledge import services as knowledge
from knowledge.decision import DecisionContext

logger = logging.getLogger(__name__)

MAX_SEND_ATTEMPTS = 8


def _conversation_reusable(conversation: Conversation, now: dt.datetime) -> bool:
    idle = dt.timedelta(minutes=settings.KEFU_CONVERSATION_IDLE_MINUTES)
    active = conversation.last_message_at is None or now - conversation.last_message_at < idle
    return conversation.status in (Conversation.Status.QUEUED, Conversation.Status.HUMAN) or active


def _conversation_for(customer: Customer, now: dt.datetime, latest: Conversation | None = None) -> Conversation:
    """The customer's open conversation, or a new one after the inactivity window. ``latest``: the customer's
    newest conversation, locked, when the caller read it with the customer (used when it is still open)."""
    if latest is None or not _conversation_reusable(latest, now):
        latest = Conversation.objects.select_for_update().filter(customer=customer).order_by("-id").first()
        if latest is None or not _conversation_reusable(latest, now):
            return Conversation.objects.create(
                customer=customer, channel=customer.channel, status=Conversation.Status.BOT
            )
    if latest.status == Conversation.Status.RESOLVED:
        latest.status = Conversation.Status.BOT
        latest.resolved_at = None
    return latest


@functools.cache
def _customer_locked_sql() -> str:
    """A known customer and its newest conversation, both locked, in one statement (only conversations are made
    under the customer's lock, so the newest one seen after waiting for it is still the newest when it is open;
    one that is not open is looked up again by ``_conversation_for``)."""
    return (
        f"SELECT {fastsql.columns_sql(Customer, 'cu')}, {fastsql.columns_sql(Conversation, 'cv')} "
        f"FROM {fastsql.table(Customer)} cu JOIN {fastsql.table(Conversation)} cv "
        "ON cv.customer_id = cu.id WHERE cu.channel_id = %s AND cu.external_id = %s "
        "ORDER BY cv.id DESC LIMIT 1 FOR UPDATE OF cu, cv"
    )


def _customer_locked(channel: Channel, sender_id: str) -> tuple[Customer | None, Conversation | None]:
    with connection.cursor() as cursor:
        cursor.execute(_customer_locked_sql(), [channel.id, sender_id])
        row = cursor.fetchone()
    if row is not None:
        customer, conversation = fastsql.instances_from_row(row, (Customer, Conversation))
        customer.channel = channel
        conversation.customer = customer
        return customer, conversation
    return None, None  # a new customer, or one without a conversation yet: see _customer_new


def _customer_new(channel: Channel, inbound: InboundMessage) -> tuple[Customer, bool]:
    """The customer ``_customer_locked`` did not find with a conversation, locked: ``(customer, True)`` when this
    request created it (one INSERT … ON CONFLICT DO NOTHING: a new row is invisible to others, and a concurrent
    insert of the same sender waits for this transaction), else the existing row (a customer without a
    conversation, or one another request created first) read with FOR UPDATE."""
    customer = fastsql.insert_new(Customer(channel=channel, external_id=inbound.sender_id, nickname=inbound.nickname))
    if customer is not None:
        return customer, True
    customer = Customer.objects.select_for_update().get(channel=channel, external_id=inbound.sender_id)
    customer.channel = channel
    return customer, False


def _message_seen(*, channel_id: int, external_id: str) -> Message | None:
    """The message already stored with this id (a redelivery), or None (``fastsql.first_row``: it runs on every
    webhook of a known customer)."""
    return fastsql.first_row(Message, {"channel": channel_id, "external_id": external_id})


def message_receive(*, channel: Channel, inbound: InboundMessage, passive_wait: float = 0.0) -> tuple[Message, bool]:
    """Store one inbound message exactly once and queue its processing after commit.

    Returns ``(message, created)``; a message already seen (same channel and external id) is returned as is
    with ``created=False`` and queues nothing.

    A message a human servicer typed in the WeCom client (``meta["from_servicer"]``) is stored as an outgoing
    agent message, already sent, and never processed by the bot. ``passive_wait`` (seconds > 0) tells the
    pipeline, before it can run, that an Official Account webhook waits that long for a passive reply.
    """
    if not inbound.external_id:
        raise ApplicationError("inbound message without an external id", code="missing_external_id")
    if not inbound.sender_id:
        raise ApplicationError("inbound message without a sender", code="missing_sender")
    try:
        return _message_store(channel=channel, inbound=inbound, passive_wait=passive_wait)
    except IntegrityError:  # the same id from another sender, or two first messages of a new customer at once
        existing = _message_seen(channel_id=channel.id, external_id=inbound.external_id)
        if existing is None:
            raise
        return existing, False


@transaction.atomic
def _message_store(*, channel: Channel, inbound: InboundMessage, passive_wait: float) -> tuple[Message, bool]:
    # One writer per customer at a time: a known customer and its newest conversation are read and locked in one
    # statement; the duplicate check comes after the lock, so a concurrent copy of this message is seen committed.
    # A customer created here has no messages: its first message is not a redelivery (the same message from the
    # same sender would have found the customer), and it starts a conversation already stamped with this message.
    customer, latest = _customer_locked(channel, inbound.sender_id)
    created = False
    if customer is None:
        customer, created = _customer_new(channel, inbound)
    now = timezone.now()
    if created:
        conversation = fastsql.insert(
            Conversation(customer=customer, channel=channel, status=Conversation.Status.BOT, last_message_at=now)
        )
    else:
        existing = _message_seen(channel_id=channel.id, external_id=inbound.external_id)
        if existing is not None:
            return existing, False
        if inbound.nickname and inbound.nickname != customer.nickname:
            customer.nickname = inbound.nickname
            customer.save(update_fields=["nickname", "updated_at"])
        conversation = _conversation_for(customer, now, latest)
    from_servicer = bool(inbound.meta.get("from_servicer"))
    message = fastsql.insert(  # a duplicate id raises IntegrityError: see message_receive
        Message(
            conversation=conversation,
            channel=channel,
            direction=Message.Direction.OUT if from_servicer else Message.Direction.IN,
            sender=Message.Sender.AGENT if from_servicer else Message.Sender.CUSTOMER,
            type=inbound.type if inbound.type in Message.Type.values else Message.Type.UNSUPPORTED,
            content=inbound.text,
            meta=inbound.meta,
            external_id=inbound.external_id,
            status=Message.Status.SENT if from_servicer else Message.Status.RECEIVED,
        )
    )
    screening.inbound_screen(message)  # sensitive words: masked, recorded and marked before anyone sees it
    if not created:
        conversation.last_message_at = now
        fastsql.update(conversation, ["last_message_at", "status", "resolved_at", "updated_at"])
    publish_message(message, customer.id)
    logger.info("message received", extra={"message_id": message.id, "conversation_id": conversation.id})
    if not from_servicer:
        if passive_wait > 0:
            _passive_window_open(message.id, passive_wait)  # before the pipeline can possibly run
        transaction.on_commit(lambda: _queue_processing(message.id))
    return message, True


def _queue_processing(message_id: int) -> None:
    from bots.tasks import process_message

    try:
        process_message.delay(message_id)
    except Exception:  # broker down: the message is stored; the sweeper queues it again later
        logger.exception("could not queue message", extra={"message_id": message_id})


@functools.cache
def _message_locked_sql() -> str:
    tables = {model: fastsql.table(model) for model in (Message, Conversation, Customer, Channel)}
    return (
        f"SELECT {fastsql.columns_sql(Message, 'm')}, {fastsql.columns_sql(Conversation, 'cv')}, {fastsql.columns_sql(Customer, 'cu')}, "
        f"{fastsql.columns_sql(Channel, 'ch')} FROM {tables[Message]} m "
        f"JOIN {tables[Conversation]} cv ON cv.id = m.conversation_id JOIN {tables[Customer]} cu ON cu.id = "
        f"cv.customer_id JOIN {tables[Channel]} ch ON ch.id = m.channel_id WHERE m.id = %s AND m.direction = %s "
        "FOR UPDATE OF m, cv"
    )


def _message_locked(message_id: int) -> Message | None:
    """The inbound message with its conversation (both locked), the conversation's customer and the message's
    channel, in one raw statement (the ORM's select_related query cost more CPU to compile than to run)."""
    with connection.cursor() as cursor:
        cursor.execute(_message_locked_sql(), [message_id, Message.Direction.IN.value])
        row = cursor.fetchone()
    if row is None:
        return None
    message, conversation, customer, channel = fastsql.instances_from_row(
        row, (Message, Conversation, Customer, Channel)
    )
    conversation.customer = customer
    message.conversation = conversation
    message.channel = channel
    return message


@transaction.atomic
def conversation_handle(*, message_id: int, send_inline: bool = False) -> Message | None:
    """Decide and queue the reply to one inbound message; a second call for the same message does nothing.

    Returns the reply message, or None when nothing was sent (already processed, with a human, ignored).
    ``send_inline`` (the inbound task sets it): the bot's reply is sent by this process right after commit
    instead of by a ``send_outbox`` task (see ``bots.services.outbound.reply_queue``); Official Account replies
    are always queued (a retried push may still take them as a passive reply).
    """
    message = _message_locked(message_id)
    if message is None or message.status != Message.Status.RECEIVED:
        return None
    conversation = message.conversation
    if conversation.channel_id == message.channel_id:
        conversation.channel = message.channel  # already loaded: reply_queue needs it
    customer = conversation.customer
    passive = message.channel.kind == Channel.Kind.OA
    # OA replies stay queued: a WeChat retry of the push may still take the reply passively (free of quota)
    send_inline = send_inline and not passive
    with klog.bound(message_id=message.id, conversation_id=conversation.id):
        message.status = Message.Status.PROCESSED
        message.processed_at = timezone.now()
        reply = None
        from routing import services as routing  # bots hands off to routing; lazy: routing sends through bots

        command = subscription.command_of(message.content) if message.type == Message.Type.TEXT else ""
        if command:  # 退订 / 订阅 hook: honoured whoever holds the conversation, answered with one confirmation
            message.trace = {"kind": "subscription", "stage": "subscription", "command": command}
            reply = reply_queue(
                conversation=conversation,
                text=subscription.customer_subscription_set(customer_id=customer.id, command=command),
                trace={"kind": "subscription", "stage": "subscription"},
                reply_to=message,
                send_delay=_passive_hold_seconds(message.id) if passive else 0.0,
                send_inline=send_inline,
            )
        elif conversation.status in (Conversation.Status.QUEUED, Conversation.Status.HUMAN):
            message.trace = {"kind": "human", "stage": "with_agent"}
            routing.ticket_customer_message(conversation_id=conversation.id, message_id=message.id)
        elif message.channel.kind == Channel.Kind.KF and message.type == Message.Type.EVENT:
            # WeCom events (enter_session, msg_send_fail…) are not customer messages: send_msg may not answer
            # them, and a welcome needs send_msg_on_event within 20 s, which WeCom's own 欢迎语 covers
            message.trace = {"kind": "ignore", "stage": "wecom_event", "event": str(message.meta.get("event") or "")}
        elif (verdict := screening.inbound_verdict(message)) is not None:  # a sensitive hand-off or block word
            message.trace = verdict.trace
            if verdict.handoff:
                routing.handoff_start(conversation.id, verdict.reason, text=message.content, message_id=message.id)
            else:
                reply = reply_queue(
                    conversation=conversation,
                    text=verdict.reply,
                    trace=verdict.trace,
                    reply_to=message,
                    send_delay=_passive_hold_seconds(message.id) if passive else 0.0,
                    send_inline=send_inline,
                )
        elif message.type == Message.Type.TEXT and routing.csat_capture(
            conversation.id, message.content, customer_id=customer.id
        ):
            message.trace = {"kind": "csat", "stage": "csat"}
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
            reason = routing.handoff_check(
                conversation_id=conversation.id,
                text=message.content,
                decision_kind=decision.kind,
                decision_trace=decision.trace,
                message_id=message.id,
                conversation=conversation,
            )
            if reason:
                message.trace = {**decision.trace, "handoff": reason}
                routing.handoff_start(
                    conversation.id,
                    reason,
                    intent=routing.intent_from_trace(decision.trace) or None,
                    text=message.content,
                    message_id=message.id,
                )
            elif decision.reply:
                reply = reply_queue(
                    conversation=conversation,
                    text=decision.reply,
                    trace=decision.trace,
                    reply_to=message,
                    send_delay=_passive_hold_seconds(message.id) if passive else 0.0,
                    send_inline=send_inline,
                )
            logger.info("message decided", extra={"kind": decision.kind, "elapsed_ms": decision.trace["elapsed_ms"]})
        fastsql.update(message, ["status", "processed_at", "trace"])
        if passive:
            reply_id = reply.id if reply else 0
            transaction.on_commit(lambda: _passive_offer(message.id, reply_id))
        return reply


# --- Official Account passive replies -------------------------------------------------------------------
#
# WeChat waits 5 s for the HTTP answer to a push, and a reply inside that answer (被动回复) costs none of the
# customer-service quota. The webhook stores the message (opening a "window" key with the budget as its TTL),
# then blocks on a Redis list for the pipeline's decision. The pipeline, seeing the window open, queues the
# send task with a countdown past the window, and after commit pushes the reply id (or 0: no reply) to the
# list. Whoever claims the outbox row first wins: the webhook with a conditional UPDATE pending → sent
# (reason "passive"), the sender under its row lock (it skips rows already sent). See README, "Channels and
# webhooks".

PASSIVE_MAX_BUDGET = 4.5  # seconds; WeChat gives up after 5
PASSIVE_SEND_MARGIN = 1.0  # seconds the send task waits beyond the webhook's window
PASSIVE_OFFER_TTL = 30  # seconds a decision stays in the list (for WeChat's retries)
PASSIVE_REASON = "passive"


def passive_budget(channel: Channel) -> float:
    """Seconds an OA webhook may wait for the bot: channel setting ``passive_budget`` or
    ``settings.KEFU_OA_PASSIVE_BUDGET_SECONDS``, capped below WeChat's 5 s; 0 disables passive replies."""
    value = channel.settings.get("passive_budget")
    if value is None or value == "":
        value = getattr(settings, "KEFU_OA_PASSIVE_BUDGET_SECONDS", 3.0)
    try:
        budget = float(value)
    except (TypeError, ValueError):
        budget = 0.0
    return max(0.0, min(budget, PASSIVE_MAX_BUDGET))


def _passive_window_key(message_id: int) -> str:
    return kredis.key("passive", "wait", message_id)


def _passive_offer_key(message_id: int) -> str:
    return kredis.key("passive", message_id)


def _passive_window_open(message_id: int, seconds: float) -> None:
    try:
        kredis.client().set(_passive_window_key(message_id), "1", px=max(int(seconds * 1000), 1))
    except RedisError:
        logger.warning("passive window not recorded", exc_info=True, extra={"message_id": message_id})


def _passive_hold_seconds(message_id: int) -> float:
    """How long the send of a reply must wait so an OA webhook still inside its window can claim it first."""
    try:
        remaining_ms = kredis.client().pttl(_passive_window_key(message_id))
    except RedisError:
        return 0.0
    return remaining_ms / 1000 + PASSIVE_SEND_MARGIN if remaining_ms and remaining_ms > 0 else 0.0


def _passive_offer(message_id: int, reply_id: int) -> None:
    try:
        pipe = kredis.client().pipeline()
        pipe.lpush(_passive_offer_key(message_id), str(reply_id))
        pipe.expire(_passive_offer_key(message_id), PASSIVE_OFFER_TTL)
        pipe.execute()
    except RedisError:  # the webhook then answers "success" and the outbox sends as usual
        logger.warning("passive offer not pushed", exc_info=True, extra={"message_id": message_id})


@transaction.atomic
def passive_reply_claim(*, message_id: int) -> Message | None:
    """Take the bot's reply to inbound ``message_id`` for a passive answer, or None.

    The outbox row is claimed with a conditional UPDATE (pending → sent, reason "passive"); when the sender
    got there first, nothing is claimed. A reply claimed passively before is returned again: WeChat only
    retries a push when our earlier answer did not reach it.
    """
    reply = (
        Message.objects.filter(reply_to_id=message_id, direction=Message.Direction.OUT, sender=Message.Sender.BOT)
        .order_by("id")
        .first()
    )
    if reply is None:
        return None
    now = timezone.now()
    claimed = Outbox.objects.filter(message_id=reply.id, status=Outbox.Status.PENDING).update(
        status=Outbox.Status.SENT, reason=PASSIVE_REASON, sent_at=now, last_error="", updated_at=now
    )
    if not claimed:
        passive = Outbox.objects.filter(message_id=reply.id, status=Outbox.Status.SENT, reason=PASSIVE_REASON)
        return reply if passive.exists() else None
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.SENT)
    reply.status = Message.Status.SENT
    realtime.publish(
        realtime.conversation_group(reply.conversation_id),
        "conversation.updated",
        {"conversation_id": reply.conversation_id, "message_id": reply.id, "delivery": "sent", "via": "passive"},
    )
    logger.info("reply claimed for a passive answer", extra={"message_id": reply.id})
    return reply


def passive_reply_wait(*, message: Message, created: bool, deadline: float) -> Message | None:
    """Wait until ``deadline`` (``time.monotonic()``) for the bot's reply to an OA message and claim it.

    ``created`` False means WeChat retried a push we already stored: it is not processed again, but its reply,
    when ready, is still returned passively (and when the pipeline is still deciding, we wait for it again).
    """
    if not created:
        status = Message.objects.filter(pk=message.pk).values_list("status", flat=True).first()
        if status != Message.Status.RECEIVED:
            return passive_reply_claim(message_id=message.id)
        _passive_window_open(message.id, deadline - time.monotonic())
    if not connection.in_atomic_block:
        connection.close()  # do not hold a database connection (or a pool slot) for seconds while waiting
    client = kredis.client()
    while (remaining := deadline - time.monotonic()) > 0.01:
        try:
            item = client.blpop([_passive_offer_key(message.id)], timeout=min(remaining, 1.0))
        except RedisError:
            logger.warning("passive wait failed", exc_info=True, extra={"message_id": message.id})
            return None
        if item is None:
            continue
        if item[1] in ("", "0"):
            return None  # decided, nothing to say (event, with an agent…)
        return passive_reply_claim(message_id=message.id)
    return None


def sweep_unprocessed(*, older_than_seconds: int | None = None, limit: int = 500) -> list[int]:
    """Inbound messages stored but never processed (queue lost, worker crash): queue them again."""
    age = older_than_seconds if older_than_seconds is not None else settings.KEFU_SWEEP_AFTER_SECONDS
    cutoff = timezone.now() - dt.timedelta(seconds=age)
    ids = list(
        Message.objects.filter(
            direction=Message.Direction.IN, status=Message.Status.RECEIVED, created_at__lte=cutoff
        ).values_list("id", flat=True)[:limit]
    )
    queued = _sweep_marks_claim(ids)
    for message_id in queued:
        _queue_processing(message_id)
    return queued


SWEEP_MARK_SECONDS = 300  # = the broker's visibility timeout: a task queued longer ago than this may really be lost


def _sweep_marks_claim(ids: list[int]) -> list[int]:
    """The ids the sweeper has not queued within ``SWEEP_MARK_SECONDS`` (marking them now). In a backlog longer
    than ``KEFU_SWEEP_AFTER_SECONDS`` every waiting message looks unprocessed; without the mark each sweep would add
    another copy of each to the queue it is waiting in, making the backlog longer. Redis down: all of them."""
    if not ids:
        return []
    try:
        pipe = kredis.client().pipeline(transaction=False)
        for message_id in ids:
            pipe.set(kredis.key("inbound", "swept", message_id), "1", nx=True, ex=SWEEP_MARK_SECONDS)
        fresh = pipe.execute()
    except RedisError:
        return ids
    return [message_id for message_id, was_set in zip(ids, fresh, strict=True) if was_set]


@transaction.atomic
def web_customer_create(*, channel: Channel, nickname: str) -> Customer:
    if channel.kind != Channel.Kind.WEB:
        raise ApplicationError("customers can only be created on a web channel", code="wrong_channel")
    return Customer.objects.create(channel=channel, external_id=f"web-{uuid.uuid4().hex[:16]}", nickname=nickname)
