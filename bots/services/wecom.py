"""微信客服 (WeCom customer service) pulling: a callback only says "something is waiting"; ``kf_sync`` reads it
with ``sync_msg`` from the stored cursor and feeds every message into the pipeline.

Guarantees
- Pulls for the same channel + ``open_kfid`` run one at a time (a Redis lock around the whole pull); a
  callback arriving during a pull is folded into it (the running pull goes round once more) instead of
  making a worker wait.
- Each page is one transaction: its messages go through ``message_receive`` (deduplicated by ``msgid``) and
  the cursor row, locked with ``SELECT … FOR UPDATE``, moves to the page's ``next_cursor`` in the same commit.
- The cursor never goes backwards: it only moves from the value the page was fetched with to the cursor WeCom
  returned for it (compare-and-set). A pull that finds the row moved on (its lock expired and another pull
  advanced meanwhile) keeps the messages, which are deduplicated, and continues from the stored cursor.
- Origin 5 (a human servicer typed in the WeCom client) is stored as an outgoing agent message and never
  answered; an echo of our own ``send_msg`` (its msgid is our outbox idempotency key) is skipped.
- Origin 4 events are stored as ``event`` messages (the bot does not answer events; no welcome is sent, see
  the README). Events without a customer (``servicer_status_change``…) are skipped.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from django.db import IntegrityError, transaction
from redis.exceptions import LockError, RedisError
from redis.lock import Lock

from bots.channels.base import InboundMessage
from bots.channels.registry import adapter_for
from bots.channels.wecom_kf import MAX_SYNC_PAGES, WecomKfAdapter
from bots.models import Channel, ChannelCursor, Outbox, adapter_config
from bots.services.inbound import message_receive
from core import redis as kredis

logger = logging.getLogger(__name__)

LOCK_TIMEOUT = 120  # seconds a pull may hold the lock before it expires (extended after every page)
MAX_ROUNDS = 20  # "pull again" rounds one call does at most (a steady stream of callbacks)


@dataclasses.dataclass
class KfSyncResult:
    pages: int = 0
    stored: int = 0
    duplicates: int = 0
    skipped: int = 0
    cursor: str = ""
    coalesced: bool = False  # another pull was running and will pull again for this call


def kf_adapter(channel: Channel, **options: Any) -> WecomKfAdapter:
    """The channel's adapter, sharing the WeCom access token with every worker (Redis token store)."""
    from bots.tokens import RedisTokenStore

    options.setdefault("token_store", RedisTokenStore(channel=channel.slug))
    adapter = adapter_for(channel.kind, slug=channel.slug, config=adapter_config(channel), **options)
    assert isinstance(adapter, WecomKfAdapter)
    return adapter


def _cursor_row(channel: Channel, key: str) -> ChannelCursor:
    try:
        with transaction.atomic():
            row, _ = ChannelCursor.objects.get_or_create(channel=channel, key=key)
    except IntegrityError:  # created concurrently
        row = ChannelCursor.objects.get(channel=channel, key=key)
    return row


def _is_own_echo(inbound: InboundMessage) -> bool:
    """An origin-5 item that is a message we sent with send_msg (its msgid is our idempotency key)."""
    return (
        bool(inbound.meta.get("from_servicer")) and Outbox.objects.filter(idempotency_key=inbound.external_id).exists()
    )


@transaction.atomic
def kf_page_store(
    *, channel: Channel, cursor_id: int, fetched_with: str, next_cursor: str, messages: list[InboundMessage]
) -> tuple[bool, KfSyncResult]:
    """Store one ``sync_msg`` page and move the cursor, in one transaction.

    Returns ``(moved, counts)``; ``moved`` is False when the stored cursor is no longer ``fetched_with`` (the
    messages are still stored, deduplicated; the cursor is left alone so it never goes backwards).
    """
    row = ChannelCursor.objects.select_for_update().get(pk=cursor_id)
    counts = KfSyncResult()
    for inbound in messages:
        if not inbound.sender_id or _is_own_echo(inbound):
            counts.skipped += 1
            continue
        _, created = message_receive(channel=channel, inbound=inbound)
        if created:
            counts.stored += 1
        else:
            counts.duplicates += 1
    if row.cursor != fetched_with:
        logger.warning("cursor moved during a pull; not moving it", extra={"channel": channel.slug, "key": row.key})
        counts.cursor = row.cursor
        return False, counts
    if next_cursor and next_cursor != row.cursor:
        row.cursor = next_cursor
        row.pages += 1
        row.save(update_fields=["cursor", "pages", "updated_at"])
    counts.cursor = row.cursor
    return True, counts


def _pull(
    *,
    channel: Channel,
    adapter: WecomKfAdapter,
    row: ChannelCursor,
    token: str,
    open_kfid: str,
    max_pages: int,
    result: KfSyncResult,
    lock: Lock | None,
) -> None:
    """Page ``sync_msg`` from the stored cursor until ``has_more`` is 0 (or ``max_pages``)."""
    for _ in range(max_pages):
        start = ChannelCursor.objects.values_list("cursor", flat=True).get(pk=row.pk)
        messages, next_cursor, has_more = adapter.sync_messages(token, start, open_kfid)
        moved, counts = kf_page_store(
            channel=channel, cursor_id=row.pk, fetched_with=start, next_cursor=next_cursor, messages=messages
        )
        result.pages += 1
        result.stored += counts.stored
        result.duplicates += counts.duplicates
        result.skipped += counts.skipped
        result.cursor = counts.cursor
        if not has_more or (moved and not messages and next_cursor == start):
            return
        if lock is not None:
            try:
                lock.extend(LOCK_TIMEOUT, replace_ttl=True)
            except (LockError, RedisError):  # expired: the compare-and-set still keeps the cursor safe
                logger.warning("kf sync lock lost", extra={"channel": channel.slug})


def kf_sync(
    *,
    channel_id: int,
    token: str,
    open_kfid: str,
    adapter: WecomKfAdapter | None = None,
    max_pages: int = MAX_SYNC_PAGES,
) -> KfSyncResult:
    """Pull everything waiting for ``open_kfid`` (``token`` from the callback) until ``has_more`` is 0.

    Pulls for one account never overlap and never make a worker wait: a call that finds another pull running
    leaves a "pull again" mark (with its newer token) and returns at once (``result.coalesced``); the running
    pull sees the mark and pulls once more, also after releasing its lock, so no callback is lost. Without
    Redis it pulls unlocked (the cursor compare-and-set and the msgid dedupe keep that correct).

    Raises ``ApiError`` when sync_msg fails; the cursor then stays at the last stored page, so the next pull
    resumes there.
    """
    result = KfSyncResult()
    channel = Channel.objects.filter(pk=channel_id, kind=Channel.Kind.KF, enabled=True).first()
    if channel is None:
        logger.info("kf sync skipped: channel missing or disabled", extra={"channel_id": channel_id})
        return result
    adapter = adapter or kf_adapter(channel)
    key = open_kfid or ""
    row = _cursor_row(channel, key)
    pull = {"channel": channel, "adapter": adapter, "row": row, "open_kfid": open_kfid}
    pull.update(max_pages=max_pages, result=result)
    client = kredis.client()
    lock_key = kredis.key("kf", "sync", channel.id, key or "-")
    again_key = lock_key + ":again"
    try:
        client.set(again_key, token or "", ex=LOCK_TIMEOUT)
        rounds = 0
        while rounds < MAX_ROUNDS:
            lock = client.lock(lock_key, timeout=LOCK_TIMEOUT)
            if not lock.acquire(blocking=False):
                result.coalesced = True  # the running pull will pull again for us
                break
            try:
                while rounds < MAX_ROUNDS and (pending := client.getdel(again_key)) is not None:
                    _pull(token=pending or token, lock=lock, **pull)
                    rounds += 1
            finally:
                try:
                    lock.release()
                except LockError:
                    pass
            if not client.exists(again_key):  # nobody asked while we were releasing
                break
    except RedisError:
        logger.warning("kf sync without its Redis lock", exc_info=True, extra={"channel": channel.slug})
        _pull(token=token, lock=None, **pull)
    logger.info(
        "kf sync done",
        extra={"channel": channel.slug, "pages": result.pages, "stored": result.stored, "dupes": result.duplicates},
    )
    return result
