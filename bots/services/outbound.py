"""Outbound half of the message path: the one entry point for outgoing messages, the outbox sender."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import uuid

import requests
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from redis.exceptions import RedisError

from bots import ratelimit, ratelimit_math
from bots.channels import http
from bots.channels.base import OutgoingMessage, SendError
from bots.models import Channel, Conversation, Customer, Message, Outbox, adapter_config
from bots.services import privacy, screening, subscription
from bots.services.common import delivery_meta, publish_message, send_meta
from bots.tokens import RedisTokenStore
from core import fastsql, realtime, sensitive
from core import logging as klog
from core import redis as kredis
from core.errors import ApplicationError

logger = logging.getLogger(__name__)

MAX_SEND_ATTEMPTS = 8


def reply_queue(
    *,
    conversation: Conversation,
    text: str,
    sender: str = Message.Sender.BOT,
    trace: dict | None = None,
    reply_to: Message | None = None,
    send_delay: float = 0.0,
    send_inline: bool = False,
) -> Message:
    """The one entry point for outgoing messages: a Message(out) plus its Outbox row, sent after commit.

    ``send_delay`` (seconds) holds the send task back, e.g. while an Official Account webhook may still
    claim the row for a passive reply (see ``bots.services.inbound.passive_reply_claim``).

    ``send_inline`` (with no ``send_delay``): this process sends the row itself right after commit, through
    the same claim as the ``send_outbox`` task (``outbox_send``: idempotency key, rate limit, holds), instead of
    queueing that task: one broker round trip and task less per reply. Used by the inbound worker task, whose
    ``acks_late`` covers the send; if the send cannot even start, the task is queued as usual.

    The reply carries the delivery meta (WeCom ``open_kfid``, bridge ``room_id``, OA ``account``) of the message
    it answers, or of the customer's latest message when it answers none (agent and system messages)."""
    source = reply_to or (
        Message.objects.filter(conversation=conversation, direction=Message.Direction.IN).order_by("-id").first()
    )
    # policy hook (退订): a proactive message to an unsubscribed customer is stored blocked, never queued
    refusal = subscription.proactive_refusal(conversation=conversation, sender=sender, trace=trace, reply_to=reply_to)
    # inside the caller's transaction no savepoint (two statements less per reply): a failure here fails it all
    with transaction.atomic(savepoint=False):
        message = fastsql.insert(
            Message(
                meta=delivery_meta(source) if source is not None else {},
                conversation=conversation,
                channel=conversation.channel,
                direction=Message.Direction.OUT,
                sender=sender,
                type=Message.Type.TEXT,
                content=text,
                trace=trace,
                status=Message.Status.BLOCKED if refusal else Message.Status.PENDING,
                reply_to=reply_to,
            )
        )
        inline = not refusal and send_inline and not send_delay
        # an inline send of a row the fast claim would take anyway is claimed by the INSERT itself (one UPDATE
        # less); the claim record is written before the commit, as ``_outbox_claim_fast`` does
        preclaimed = inline and _fast_claim_allowed(conversation.channel)
        outbox = fastsql.insert(
            Outbox(
                message=message,
                channel=conversation.channel,
                idempotency_key=uuid.uuid4().hex,
                **({"status": Outbox.Status.BLOCKED, "reason": refusal} if refusal else {}),
                **({"status": Outbox.Status.SENDING, "attempts": 1} if preclaimed else {}),
            )
        )
        conversation.last_message_at = timezone.now()
        fastsql.update(conversation, ["last_message_at"])
        if screening.outbound_screen(message=message, outbox=outbox):  # a sensitive block word: never sent
            return message
        publish_message(message, conversation.customer_id)
        if inline:
            outbox.message = message  # message.conversation is the caller's, its customer loaded
            if preclaimed:
                _claim_record(outbox.pk)
                outbox.preclaimed = True  # for _outbox_claim_fast: this process holds the claim
            transaction.on_commit(lambda: _send_inline(outbox))
        elif not refusal:
            transaction.on_commit(lambda: _queue_send(outbox.id, countdown=send_delay))
    return message


def _send_inline(outbox: Outbox) -> None:
    """Send a just-committed row from this process (see ``reply_queue``). A crash in the middle leaves the row
    'pending' or 'sending' under this process's claim: a redelivered inbound task (``reply_resume``) or the
    outbox sweeper takes it from there, with the same idempotency key."""
    try:
        outbox_send(outbox_id=outbox.pk, loaded=outbox)
    except Exception:  # the database or Redis failed before or after the claim: the queued path retries it
        logger.exception("inline send failed; queueing it", extra={"outbox_id": outbox.pk})
        _queue_send(outbox.pk)


def reply_resume(*, reply_to_id: int) -> list[str]:
    """Finish the sends of the replies to inbound message ``reply_to_id`` that an earlier, killed run of its task
    left behind (inline sends: 'pending', or 'sending' under a dead claim). Rows with a send task queued (marked)
    are left to that task; a live 'sending' row stays with its sender (``outbox_send`` answers 'in_flight')."""
    ids = list(
        Outbox.objects.filter(
            message__reply_to_id=reply_to_id, status__in=[Outbox.Status.PENDING, Outbox.Status.SENDING]
        ).values_list("id", flat=True)
    )
    return [outbox_send(outbox_id=outbox_id) for outbox_id in _not_queued(ids)]


QUEUED_MARK_SECONDS = 300  # = the broker's visibility timeout: a task older than this may really be lost


def _queue_send(outbox_id: int, countdown: float = 0.0) -> None:
    from bots.tasks import send_outbox

    try:
        if countdown > 0:
            send_outbox.apply_async((outbox_id,), countdown=countdown)
        else:
            send_outbox.delay(outbox_id)
    except Exception:
        logger.exception("could not queue outbox", extra={"outbox_id": outbox_id})
        return
    try:  # tells the sweeper a task is on its way, so a long queue is not filled with copies
        kredis.client().set(_queued_key(outbox_id), "1", ex=int(countdown) + QUEUED_MARK_SECONDS)
    except RedisError:
        pass


def _queued_key(outbox_id: int) -> str:
    return kredis.key("outbox", "queued", outbox_id)


def _not_queued(ids: list[int]) -> list[int]:
    """The ids without a live "queued" mark (Redis flushed or down: all of them, which is the safe side)."""
    if not ids:
        return []
    try:
        marks = kredis.client().mget([_queued_key(pk) for pk in ids])
    except RedisError:
        return ids
    return [pk for pk, mark in zip(ids, marks, strict=True) if not mark]


# --- sending ---------------------------------------------------------------------------------------------
#
# Statuses: pending → sending → sent; a retryable failure → failed (next_attempt_at = backoff with jitter,
# re-queued with a countdown and found again by the sweeper) → dead after MAX_SEND_ATTEMPTS; held (may not go
# yet: account rate limit, personal-account gap, WeCom quota; next_attempt_at says when to look again) and
# blocked (can never go: outside the 48-hour window, a permanent send error). Held and blocked rows carry a
# reason; nothing is dropped silently. See README "Delivery guarantees and load test".

PASSIVE_REASON = "passive"  # set by bots.services.inbound.passive_reply_claim: sent in the webhook answer
OPENING_EVENTS = frozenset({"subscribe", "click", "scan"})  # OA events that open the 1-minute window
QUOTA_REASONS = frozenset({ratelimit_math.REASON_WECOM_QUOTA, ratelimit_math.REASON_OA_QUOTA})
REASON_LIMITER_UNAVAILABLE = "limiter_unavailable"
REASON_MAX_ATTEMPTS = "max_attempts"
LIMITER_RETRY_SECONDS = 15.0
DUE_TOLERANCE = dt.timedelta(seconds=1)

REASON_LABELS = {
    ratelimit_math.REASON_RATE_LIMIT: _("Hourly sending limit of the account reached"),
    ratelimit_math.REASON_MIN_GAP: _("Waiting for the gap between messages of a personal account"),
    ratelimit_math.REASON_OUTSIDE_WINDOW: _("Outside the 48-hour customer-service window"),
    ratelimit_math.REASON_WECOM_QUOTA: _("WeCom quota of 5 messages per customer message used up"),
    ratelimit_math.REASON_OA_QUOTA: _("Official Account quota per customer message used up"),
    REASON_LIMITER_UNAVAILABLE: _("Rate limiter unavailable, will retry"),
    REASON_MAX_ATTEMPTS: _("Gave up after too many failed attempts"),
    PASSIVE_REASON: _("Sent as a passive reply"),
    sensitive.REASON: _("Contains a blocked sensitive word"),
    subscription.REASON_UNSUBSCRIBED: _("The customer unsubscribed from proactive messages"),
}


def reason_label(reason: str) -> str:
    """The operator-facing text of an ``Outbox.reason`` (codes of permanent send errors are shown as they are)."""
    return str(REASON_LABELS.get(reason, reason))


_local = threading.local()
_nonce: tuple[int, str] = (0, "")


def _process_nonce() -> str:
    """A random tag of this process, new in every forked child (prefork pool processes share the parent's
    memory), so a pid reused by a new process is never mistaken for the one that claimed a row."""
    global _nonce
    if _nonce[0] != os.getpid():
        _nonce = (os.getpid(), uuid.uuid4().hex[:8])
    return _nonce[1]


def _http_session() -> http.Session | requests.Session:
    """One keep-alive HTTP session per worker thread, shared by every channel it sends to (the lean urllib3 one
    of ``bots.channels.http``: about 1 ms of CPU less per send than ``requests``)."""
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = http.session_for_sending()
    return session


def _claim_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{_process_nonce()}"


def _claim_key(outbox_id: int) -> str:
    return kredis.key("outbox", "claim", outbox_id)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed process nobody reaped yet is a zombie: dead for our purpose
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _owner_dead(owner: str | None) -> bool:
    """True when the process that claimed a row runs on this host and no longer exists (killed mid-send)."""
    if not owner:
        return False
    host, _sep, rest = owner.partition(":")
    pid_text, _sep, nonce = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False  # another machine: only the stuck timeout can tell
    pid = int(pid_text)
    if pid == os.getpid():
        return nonce != _process_nonce()  # same pid, other nonce: an earlier process that had our pid
    return not _process_alive(pid)


def _claim_owner_get(outbox_id: int) -> str | None:
    try:
        return kredis.client().get(_claim_key(outbox_id))
    except RedisError:
        return None


def _sending_is_stale(outbox: Outbox, now: dt.datetime) -> bool:
    """A row in 'sending' may be taken over when its sender died: stuck longer than the timeout (which exceeds
    any adapter timeout, so a live send is never duplicated), or its process on this host is gone."""
    if outbox.updated_at <= now - dt.timedelta(seconds=settings.KEFU_OUTBOX_STUCK_SECONDS):
        return True
    return _owner_dead(_claim_owner_get(outbox.id))


def _window_policy(channel: Channel) -> ratelimit_math.WindowPolicy | None:
    """The channel's per-customer policy: OA 48-hour window (plus 3 messages within a minute of a menu click,
    follow or scan), WeCom 5 messages per customer message within 48 h. Setting ``replies_per_customer_message``
    overrides the quota (OA default 0 = no quota)."""
    quota = channel.settings.get("replies_per_customer_message")
    if channel.kind == Channel.Kind.KF:
        return ratelimit_math.WindowPolicy(
            quota=int(quota if quota not in (None, "") else settings.KEFU_WECOM_REPLIES_PER_MESSAGE),
            quota_reason=ratelimit_math.REASON_WECOM_QUOTA,
        )
    if channel.kind == Channel.Kind.OA:
        return ratelimit_math.WindowPolicy(
            quota=int(quota or 0), quota_reason=ratelimit_math.REASON_OA_QUOTA, event_quota=3
        )
    return None


def _customer_verdict(outbox: Outbox, now: dt.datetime) -> ratelimit_math.Verdict | None:
    """May this row go to its customer now (platform window and quota)? None: the channel has no such rules.

    Called inside the claim transaction; the customer row lock makes concurrent sends to one customer count
    each other (a row being sent counts as sent)."""
    policy = _window_policy(outbox.channel)
    if policy is None:
        return None
    customer_id = outbox.message.conversation.customer_id
    Customer.objects.select_for_update().filter(pk=customer_id).values_list("pk", flat=True).first()
    inbound = Message.objects.filter(
        conversation__customer_id=customer_id, direction=Message.Direction.IN, sender=Message.Sender.CUSTOMER
    )
    last_message_at = (
        inbound.exclude(type=Message.Type.EVENT).order_by("-created_at").values_list("created_at", flat=True).first()
    )
    last_event_at = None
    if policy.event_quota:
        recent = inbound.filter(
            type=Message.Type.EVENT, created_at__gt=now - dt.timedelta(seconds=policy.event_window_seconds)
        ).order_by("-created_at")
        for created_at, meta in recent.values_list("created_at", "meta")[:10]:
            if str((meta or {}).get("event") or "").lower() in OPENING_EVENTS:
                last_event_at = created_at
                break
    others = (
        Outbox.objects.filter(message__conversation__customer_id=customer_id)
        .exclude(pk=outbox.pk)
        .exclude(reason=PASSIVE_REASON)
    )

    def sent_after(moment: dt.datetime | None) -> int:
        if moment is None:
            return 0
        return others.filter(
            Q(status=Outbox.Status.SENT, sent_at__gt=moment) | Q(status=Outbox.Status.SENDING, updated_at__gt=moment)
        ).count()

    return ratelimit_math.window_verdict(
        policy,
        now=now.timestamp(),
        last_message_at=last_message_at.timestamp() if last_message_at else None,
        sent_since_message=sent_after(last_message_at),
        last_event_at=last_event_at.timestamp() if last_event_at else None,
        sent_since_event=sent_after(last_event_at),
    )


def _countdown_to(moment: dt.datetime, now: dt.datetime) -> float | None:
    """Seconds until ``moment`` when short enough for a broker countdown; longer waits are left to the sweeper
    (a long ETA would outlive the broker's visibility timeout and come back twice)."""
    seconds = max((moment - now).total_seconds(), 0.0)
    return seconds if seconds <= settings.KEFU_OUTBOX_MAX_COUNTDOWN_SECONDS else None


def _requeue_later(outbox_id: int, moment: dt.datetime, now: dt.datetime) -> None:
    countdown = _countdown_to(moment, now)
    if countdown is not None:
        transaction.on_commit(lambda: _queue_send(outbox_id, countdown=max(countdown, 0.01)))


def _publish_delivery(message: Message, delivery: str, reason: str = "") -> None:
    payload = {"conversation_id": message.conversation_id, "message_id": message.id, "delivery": delivery}
    if reason:
        payload["reason"] = reason
        payload["reason_label"] = reason_label(reason)
    realtime.publish(realtime.conversation_group(message.conversation_id), "conversation.updated", payload)


def _hold(outbox: Outbox, *, reason: str, until: dt.datetime, now: dt.datetime) -> str:
    """Mark the row held until ``until`` (inside the claim transaction) and make sure it comes back."""
    already = outbox.status == Outbox.Status.HELD and outbox.next_attempt_at == until and outbox.reason == reason
    Outbox.objects.filter(pk=outbox.pk).update(
        status=Outbox.Status.HELD, reason=reason[:64], next_attempt_at=until, updated_at=now
    )
    if not already:  # a duplicate task for the same hold must not queue yet another countdown
        _requeue_later(outbox.pk, until, now)
        _publish_delivery(outbox.message, "held", reason)
        logger.info("send held", extra={"reason": reason, "until": until.isoformat()})
    return Outbox.Status.HELD


def _block(outbox: Outbox, *, reason: str, now: dt.datetime, error: str = "") -> str:
    Outbox.objects.filter(pk=outbox.pk).update(
        status=Outbox.Status.BLOCKED,
        reason=reason[:64],
        next_attempt_at=None,
        updated_at=now,
        **({"last_error": error[:2000]} if error else {}),
    )
    Message.objects.filter(pk=outbox.message_id).update(status=Message.Status.BLOCKED)
    _publish_delivery(outbox.message, "blocked", reason)
    logger.warning("send blocked", extra={"reason": reason})
    return Outbox.Status.BLOCKED


def _outbox_claim(outbox_id: int) -> Outbox | str:
    """Lock the row and decide: return the row (now 'sending', ours to send) or the status it keeps."""
    with transaction.atomic():
        outbox = (
            Outbox.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("message__conversation__customer", "channel")
            .filter(pk=outbox_id)
            .first()
        )
        if outbox is None:
            return "locked_or_missing"  # another task holds the row right now and will finish it
        now = timezone.now()
        status = outbox.status
        if status in (Outbox.Status.SENT, Outbox.Status.DEAD, Outbox.Status.BLOCKED):
            return status
        if status == Outbox.Status.SENDING and not _sending_is_stale(outbox, now):
            return "in_flight"
        early_is_fine = status == Outbox.Status.HELD and outbox.reason in QUOTA_REASONS  # released by a new message
        if (
            status in (Outbox.Status.FAILED, Outbox.Status.HELD)
            and outbox.next_attempt_at is not None
            and outbox.next_attempt_at > now + DUE_TOLERANCE
            and not early_is_fine
        ):
            return status  # a duplicate task arrived early; the countdown or the sweeper brings the row back

        verdict = _customer_verdict(outbox, now)
        if verdict is not None and not verdict.allowed:
            if verdict.final:
                return _block(outbox, reason=verdict.reason, now=now)
            assert verdict.retry_at is not None
            return _hold(outbox, reason=verdict.reason, until=_aware(verdict.retry_at), now=now)

        limits = ratelimit.limits_for(outbox.channel.kind, outbox.channel.settings)
        if limits.active:
            try:
                slot = ratelimit.slot_acquire(
                    channel_slug=outbox.channel.slug, member=outbox.idempotency_key, limits=limits, now=now.timestamp()
                )
            except ratelimit.LimiterUnavailable:
                logger.warning("rate limiter unavailable; holding the message", exc_info=True)
                until = now + dt.timedelta(seconds=LIMITER_RETRY_SECONDS)
                return _hold(outbox, reason=REASON_LIMITER_UNAVAILABLE, until=until, now=now)
            if not slot.allowed:
                reason = slot.reason or outbox.reason or ratelimit_math.REASON_RATE_LIMIT
                return _hold(outbox, reason=reason, until=_aware(slot.at), now=now)

        outbox.status = Outbox.Status.SENDING
        outbox.attempts += 1
        outbox.reason = ""
        outbox.updated_at = now
        Outbox.objects.filter(pk=outbox.pk).update(
            status=outbox.status, attempts=outbox.attempts, reason="", updated_at=now
        )
        _claim_record(outbox.pk)
        return outbox


def _aware(timestamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.UTC)


def outbox_send(*, outbox_id: int, loaded: Outbox | None = None) -> str:
    """Send one outbox row through its channel's adapter. Returns the row's status afterwards.

    ``loaded``: the row as its creator has it in memory (with message, conversation, customer and channel), so
    the common claim needs no SELECT; the claim's conditional UPDATE still decides whether it is ours.

    The row is claimed under a lock (pending/failed/held → sending, or a 'sending' row whose sender died); the
    per-customer policy and the account's rate limit are checked in the same step (held or blocked instead).
    The network call happens outside the transaction; the idempotency key stays the same across retries, so a
    task redelivered after a crash never makes the receiving side show the message twice.
    """
    from bots.channels.registry import adapter_for

    claimed = _outbox_claim_fast(outbox_id, loaded=loaded) or _outbox_claim(outbox_id)
    if isinstance(claimed, str):
        return claimed
    outbox = claimed
    message = outbox.message
    channel = outbox.channel
    recipient = message.conversation.customer.external_id
    with klog.bound(message_id=message.id, conversation_id=message.conversation_id, outbox_id=outbox.id):
        try:
            adapter = adapter_for(
                channel.kind,
                slug=channel.slug,
                config=adapter_config(channel),
                token_store=RedisTokenStore(channel=channel.slug),
                session=_http_session(),
            )
            adapter.send(
                OutgoingMessage(
                    recipient_id=recipient,
                    text=message.content,
                    idempotency_key=outbox.idempotency_key,
                    meta=send_meta(message),
                )
            )
        except SendError as exc:
            return _outbox_failed(outbox, exc)
        except Exception as exc:  # unknown failure: treat as retryable, never lose the row
            logger.exception("send crashed")
            return _outbox_failed(outbox, SendError(f"{type(exc).__name__}: {exc}"))
        _mark_sent(outbox)
        message.status = Message.Status.SENT
        _publish_delivery(message, "sent")
        logger.info("message sent")
        return Outbox.Status.SENT  # the claim key expires by itself: it only matters while the row is 'sending'


def _outbox_claim_fast(outbox_id: int, loaded: Outbox | None = None) -> Outbox | None:
    """The common case in two statements instead of a locked transaction: a pending row of a channel without
    per-customer rules or account limits is claimed with one conditional UPDATE (pending → sending). Anything
    else (or losing the race) returns None and goes through ``_outbox_claim``. With ``loaded`` (a pending row
    just created by this process), only the UPDATE."""
    if loaded is not None and loaded.pk == outbox_id and getattr(loaded, "preclaimed", False):
        loaded.preclaimed = False  # claimed by its INSERT (``reply_queue``), committed: ours, once
        return loaded
    if loaded is not None and loaded.pk == outbox_id and loaded.status == Outbox.Status.PENDING:
        outbox = loaded
    else:
        outbox = (
            Outbox.objects.select_related("message__conversation__customer", "channel")
            .filter(pk=outbox_id, status=Outbox.Status.PENDING)
            .first()
        )
    if outbox is None or not _fast_claim_allowed(outbox.channel):
        return None
    now = timezone.now()
    _claim_record(outbox.pk)  # before the UPDATE commits: a kill right after it must still name a dead owner
    claimed = Outbox.objects.filter(pk=outbox.pk, status=Outbox.Status.PENDING).update(
        status=Outbox.Status.SENDING, attempts=F("attempts") + 1, reason="", updated_at=now
    )
    if claimed != 1:  # another task won: take our name off the row (unless that task already wrote its own)
        _claim_forget_if_mine(outbox.pk)
        return None
    outbox.status, outbox.reason, outbox.updated_at = Outbox.Status.SENDING, "", now
    outbox.attempts += 1
    return outbox


def _fast_claim_allowed(channel: Channel) -> bool:
    """No per-customer policy and no account limit: a row of this channel needs no locked claim."""
    return _window_policy(channel) is None and not ratelimit.limits_for(channel.kind, channel.settings).active


_FORGET_IF_MINE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


def _claim_forget_if_mine(outbox_id: int) -> None:
    try:
        kredis.client().eval(_FORGET_IF_MINE, 1, _claim_key(outbox_id), _claim_owner())
    except RedisError:
        pass


def _claim_record(outbox_id: int) -> None:
    try:
        kredis.client().set(_claim_key(outbox_id), _claim_owner(), ex=settings.KEFU_OUTBOX_STUCK_SECONDS)
    except RedisError:
        pass  # without it a dead sender is only detected by the stuck timeout


def _mark_sent(outbox: Outbox) -> None:
    """Outbox row and message to 'sent' atomically; on PostgreSQL in one statement (the hot path). ``last_error``
    stays: after a retry it tells operators what the earlier attempt ran into."""
    now = timezone.now()
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute(
                f"WITH sent AS (UPDATE {Outbox._meta.db_table} SET status = %s, sent_at = %s, "
                "reason = '', next_attempt_at = NULL, updated_at = %s WHERE id = %s RETURNING message_id) "
                f"UPDATE {Message._meta.db_table} SET status = %s WHERE id IN (SELECT message_id FROM sent)",
                [Outbox.Status.SENT, now, now, outbox.pk, Message.Status.SENT],
            )
        return
    with transaction.atomic():
        Outbox.objects.filter(pk=outbox.pk).update(
            status=Outbox.Status.SENT, sent_at=now, reason="", next_attempt_at=None, updated_at=now
        )
        Message.objects.filter(pk=outbox.message_id).update(status=Message.Status.SENT)


def _claim_release(outbox_id: int) -> None:
    try:
        kredis.client().delete(_claim_key(outbox_id))
    except RedisError:
        pass


def _outbox_failed(outbox: Outbox, exc: SendError) -> str:
    now = timezone.now()
    error = f"[{exc.code}] {exc.message}"[:2000]
    with transaction.atomic():
        if not exc.retryable:
            reason = ratelimit_math.REASON_OUTSIDE_WINDOW if exc.code == "outside_window" else exc.code
            status = _block(outbox, reason=reason, now=now, error=error)
        elif outbox.attempts >= MAX_SEND_ATTEMPTS:
            status = Outbox.Status.DEAD
            Outbox.objects.filter(pk=outbox.pk).update(
                status=status, reason=REASON_MAX_ATTEMPTS, last_error=error, next_attempt_at=None, updated_at=now
            )
            Message.objects.filter(pk=outbox.message_id).update(status=Message.Status.FAILED)
            _publish_delivery(outbox.message, "dead", REASON_MAX_ATTEMPTS)
        else:
            status = Outbox.Status.FAILED
            retry_at = now + dt.timedelta(seconds=_backoff_seconds(outbox.attempts))
            Outbox.objects.filter(pk=outbox.pk).update(
                status=status, last_error=error, next_attempt_at=retry_at, updated_at=now
            )
            Message.objects.filter(pk=outbox.message_id).update(status=Message.Status.PENDING)
            _requeue_later(outbox.pk, retry_at, now)
    _claim_release(outbox.pk)
    logger.warning("send failed", extra={"status": status, "error": exc.message, "code": exc.code})
    return status


def _backoff_seconds(attempts: int) -> float:
    return ratelimit_math.backoff_seconds(
        attempts, base=settings.KEFU_OUTBOX_BACKOFF_BASE_SECONDS, cap=settings.KEFU_OUTBOX_BACKOFF_CAP_SECONDS
    )


# --- operators and the sweeper ---------------------------------------------------------------------------


def _customer_wrote_after(field: str) -> Exists:
    """Rows whose customer sent a message after the row's ``field`` (a quota-held row may go again)."""
    return Exists(
        Message.objects.filter(
            conversation__customer_id=OuterRef("message__conversation__customer_id"),
            direction=Message.Direction.IN,
            sender=Message.Sender.CUSTOMER,
            created_at__gt=OuterRef(field),
        ).exclude(type=Message.Type.EVENT)
    )


def outbox_release_for_customer(*, customer_id: int) -> list[int]:
    """The customer wrote again: queue their rows held by a per-message quota now (the sweeper does the same
    within its period; call this after the inbound message commits for an immediate release)."""
    ids = list(
        Outbox.objects.filter(
            status=Outbox.Status.HELD,
            reason__in=QUOTA_REASONS,
            message__conversation__customer_id=customer_id,
        ).values_list("id", flat=True)
    )
    for outbox_id in ids:
        _queue_send(outbox_id)
    return ids


@transaction.atomic
def outbox_retry(*, outbox_id: int) -> Outbox:
    """An operator's "send again": a blocked, dead or failed row goes back to pending, attempts reset, and is
    queued after commit (the policy and limits are checked again on the way out)."""
    outbox = Outbox.objects.select_for_update().get(pk=outbox_id)
    if outbox.status in (Outbox.Status.SENT, Outbox.Status.SENDING):
        raise ApplicationError("this message is sent or being sent", code="outbox_not_retryable")
    if outbox.reason == sensitive.REASON:  # the text itself may not go out
        raise ApplicationError("this reply contains a blocked word; send a new text", code="outbox_sensitive_word")
    if outbox.reason in (subscription.REASON_UNSUBSCRIBED, privacy.REASON_ERASED):
        customer = Customer.objects.only("unsubscribed_at", "erased_at").get(
            conversations__messages__id=outbox.message_id
        )
        if customer.erased_at is not None or (
            outbox.reason == subscription.REASON_UNSUBSCRIBED and customer.unsubscribed_at
        ):
            raise ApplicationError(
                "the customer unsubscribed or was erased; this message may not be sent", code="outbox_refused"
            )
    now = timezone.now()
    outbox.status = Outbox.Status.PENDING
    outbox.attempts = 0
    outbox.reason = ""
    outbox.next_attempt_at = None
    outbox.save(update_fields=["status", "attempts", "reason", "next_attempt_at", "updated_at"])
    Message.objects.filter(pk=outbox.message_id).update(status=Message.Status.PENDING)
    logger.info("outbox retried by an operator", extra={"outbox_id": outbox.pk, "at": now.isoformat()})
    transaction.on_commit(lambda: _queue_send(outbox_id))
    return outbox


def sweep_outbox(*, limit: int = 500, stuck_after_seconds: int | None = None) -> list[int]:
    """The safety net behind the countdowns: queue again the rows that are due (failed or held past their
    time) or pending, when no task was queued for them recently (lost by the broker, or queued more than
    ``QUEUED_MARK_SECONDS`` ago); quota-held rows whose customer wrote again; and rows stuck in 'sending' after
    their worker died (stuck longer than ``KEFU_OUTBOX_STUCK_SECONDS``, or claimed by a process of this host that
    no longer exists)."""
    now = timezone.now()
    stuck_seconds = settings.KEFU_OUTBOX_STUCK_SECONDS if stuck_after_seconds is None else stuck_after_seconds
    stuck = now - dt.timedelta(seconds=stuck_seconds)
    pending_cutoff = now - dt.timedelta(seconds=settings.KEFU_SWEEP_AFTER_SECONDS)
    due = Q(status__in=[Outbox.Status.FAILED, Outbox.Status.HELD], next_attempt_at__lte=now) | Q(
        status=Outbox.Status.PENDING, created_at__lte=pending_cutoff
    )
    # rows whose task (or countdown) was queued in the last QUEUED_MARK_SECONDS are on their way: under a long
    # queue, copying them again would only make the queue longer
    ids = _not_queued(list(Outbox.objects.filter(due).values_list("id", flat=True)[:limit]))
    stuck_rows = Outbox.objects.filter(status=Outbox.Status.SENDING, updated_at__lte=stuck)
    ids += list(stuck_rows.values_list("id", flat=True)[:limit])
    released = Outbox.objects.filter(status=Outbox.Status.HELD, reason__in=QUOTA_REASONS).filter(
        _customer_wrote_after("updated_at")
    )
    ids += [pk for pk in released.values_list("id", flat=True)[:limit] if pk not in ids]
    recent_sending = Outbox.objects.filter(status=Outbox.Status.SENDING, updated_at__gt=stuck).values_list(
        "id", flat=True
    )[:limit]
    ids += [pk for pk in recent_sending if pk not in ids and _owner_dead(_claim_owner_get(pk))]
    for outbox_id in ids:
        _queue_send(outbox_id)
    return ids
