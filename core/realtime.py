"""The only module that talks to the channel layer.

Every event gets a per-group sequence number and is kept in a short backlog in Redis, so a client that
reconnects asks for what it missed since its last number (``events_since``). Events are published after
the surrounding transaction commits, so no client ever sees a row that was rolled back.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import threading
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from core import redis as kredis

logger = logging.getLogger(__name__)

EVENTS = (
    "message.created",
    "conversation.updated",
    "ticket.queued",
    "ticket.assigned",
    "ticket.updated",
    "agent.presence",
    "queue.position",
    "channel.limit_warning",  # a sending account reached 80 % of its hourly limit (bots.ratelimit.usage_alert)
)

# supervisors' consoles listen here (the same name as routing.services.events.SUPERVISORS)
SUPERVISORS = "supervisors"

_local_seq = itertools.count(1)  # embedded mode only (no Redis)
_local_log: dict[str, list[dict]] = {}


# One round trip per event (and one for the same event to several groups): number it, keep it in the backlog
# (the envelope is the JSON ``prefix`` + seq + ``suffix``, byte for byte what json.dumps gives), and count the
# channel layer's members of the group (its sorted set ``<prefix>:group:<name>``, see channels_redis
# ``_group_key``) so an event nobody listens to live is not sent (most customer and conversation groups: only the
# simulator and an agent looking at the conversation subscribe). A client that joins later still replays it from
# the backlog. KEYS: per group its sequence, backlog and layer-group keys; ARGV: backlog size, TTL, the envelope's
# prefix (the same for every group), then per group the envelope's suffix.
_RECORD_LUA = """
local out = {}
for i = 1, #KEYS / 3 do
  local seq = redis.call('INCR', KEYS[3 * i - 2])
  local log = KEYS[3 * i - 1]
  redis.call('ZADD', log, seq, ARGV[3] .. seq .. ARGV[3 + i])
  redis.call('ZREMRANGEBYRANK', log, 0, -tonumber(ARGV[1]) - 1)
  redis.call('EXPIRE', log, ARGV[2])
  local members = 1
  if KEYS[3 * i] ~= '' then members = redis.call('ZCARD', KEYS[3 * i]) end
  table.insert(out, seq)
  table.insert(out, members)
end
return out
"""
_record_script = None


def _layer_group_key(group: str) -> str:
    """The channel layer's Redis key of ``group`` when the layer lives on ``REDIS_URL`` (one host), else ""."""
    layers = getattr(settings, "CHANNEL_LAYERS", {}) or {}
    config = (layers.get("default") or {}).get("CONFIG") or {}
    if (layers.get("default") or {}).get("BACKEND") != "channels_redis.core.RedisChannelLayer":
        return ""
    if config.get("hosts") != [settings.REDIS_URL]:
        return ""
    return f"{config.get('prefix', 'asgi')}:group:{group}"


def _record(groups: list[str], event: str, payload: dict[str, Any]) -> list[tuple[dict[str, Any], bool]]:
    """Number and keep the event in each group; per group (envelope, whether the group may have live members)."""
    global _record_script
    if settings.KEFU_EMBEDDED:
        recorded = []
        for group in groups:
            envelope = {"event": event, "seq": next(_local_seq), "group": group, "payload": payload}
            _local_log.setdefault(group, []).append(envelope)
            del _local_log[group][: -settings.KEFU_REALTIME_BACKLOG]
            recorded.append((envelope, True))
        return recorded
    if _record_script is None:
        _record_script = kredis.client().register_script(_RECORD_LUA)
    prefix = json.dumps({"event": event}, ensure_ascii=False)[:-1] + ', "seq": '
    body = json.dumps(payload, ensure_ascii=False)
    keys, args = [], [settings.KEFU_REALTIME_BACKLOG, 86400, prefix]
    for group in groups:
        keys += [kredis.key("rt", "seq", group), kredis.key("rt", "log", group), _layer_group_key(group)]
        args.append(", " + json.dumps({"group": group}, ensure_ascii=False)[1:-1] + ', "payload": ' + body + "}")
    flat = _record_script(keys=keys, args=args, client=kredis.client())
    return [
        ({"event": event, "seq": int(seq), "group": group, "payload": payload}, int(members) > 0)
        for group, seq, members in zip(groups, flat[0::2], flat[1::2], strict=True)
    ]


_publisher: tuple[int, asyncio.AbstractEventLoop] | None = None
_publisher_lock = threading.Lock()


def _publisher_loop() -> asyncio.AbstractEventLoop:
    """One event loop thread per process for channel-layer sends from sync code (workers, sync views). The Redis
    layer keeps its connections per event loop, so ``async_to_sync`` (a new loop per call) reconnected on every
    event: ~4.5 ms of CPU each, five events per message. Recreated after a fork (Celery prefork children)."""
    global _publisher
    with _publisher_lock:
        if _publisher is None or _publisher[0] != os.getpid() or _publisher[1].is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="realtime-publisher", daemon=True).start()
            _publisher = (os.getpid(), loop)
        return _publisher[1]


def _group_send(group: str, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if settings.KEFU_EMBEDDED:  # the in-memory layer's queues belong to the consumers' loop
        async_to_sync(layer.group_send)(group, message)
        return
    asyncio.run_coroutine_threadsafe(layer.group_send(group, message), _publisher_loop()).result(timeout=5)


def _send(group: str, event: str, payload: dict[str, Any]) -> None:
    _send_many([group], event, payload)


def _send_many(groups: list[str], event: str, payload: dict[str, Any]) -> None:
    if event not in EVENTS:
        raise ValueError(f"unknown realtime event {event!r}")
    try:
        for envelope, listened in _record(groups, event, payload):
            if listened:
                _group_send(envelope["group"], {"type": "realtime.event", "envelope": envelope})
    except Exception:  # a dead socket layer must never break the message path; clients replay on reconnect
        logger.exception("realtime publish failed", extra={"groups": groups, "event": event})


def publish(group: str, event: str, payload: dict[str, Any]) -> None:
    """Send ``event`` to everyone in ``group`` once the current transaction (if any) commits."""
    transaction.on_commit(lambda: _send(group, event, payload))


def publish_many(groups: list[str], event: str, payload: dict[str, Any]) -> None:
    """``publish`` of one event to several groups, recorded in one Redis round trip (each group numbers it)."""
    transaction.on_commit(lambda: _send_many(list(groups), event, payload))


def events_since(group: str, seq: int) -> list[dict[str, Any]]:
    if settings.KEFU_EMBEDDED:
        return [e for e in _local_log.get(group, []) if e["seq"] > seq]
    raw = kredis.client().zrangebyscore(kredis.key("rt", "log", group), f"({seq}", "+inf")
    return [json.loads(item) for item in raw]


def last_seq(group: str) -> int:
    """The sequence number of the group's latest event (0: none yet), where a newly subscribed client starts."""
    if settings.KEFU_EMBEDDED:
        log = _local_log.get(group)
        return log[-1]["seq"] if log else 0
    return int(kredis.client().get(kredis.key("rt", "seq", group)) or 0)


def customer_group(customer_id: int) -> str:
    return f"customer.{customer_id}"


def conversation_group(conversation_id: int) -> str:
    return f"conversation.{conversation_id}"
