"""The agent console's socket, ``ws/console/``: thin. It authenticates, joins the agent's groups, replays what the
client missed, forwards events and records heartbeats. Every change of business state (claim, reply, note,
transfer, return, resolve, presence) is an HTTP POST (``routing.views``), never a socket message.

Groups: ``agent.<user id>``, ``agents.group.<id>`` for each of the agent's groups, ``supervisors`` for
supervisors, and ``conversation.<id>`` for the conversation open on screen (one at a time).

Client → server (JSON):

* ``{"type": "hello", "since": {"<group>": <seq>, ...}, "conversation_id": <id or null>}``: first message after
  every (re)connect. ``since`` holds the last sequence number the client saw per group.
* ``{"type": "open", "conversation_id": <id>, "since": <seq or null>}``: watch another conversation (the
  previous one is left); 404-style ``error`` when the agent may not see it.
* ``{"type": "close"}``: stop watching the open conversation.
* ``{"type": "heartbeat"}``: the answer to the server's ``ping``; calls ``agent_heartbeat`` (also called on
  connect).

Server → client:

* event envelopes ``{"event", "seq", "group", "payload"}`` (``core.realtime``), live or replayed;
* ``{"type": "ready", "conversation_id", "seq": {"<group>": <last seq>}, "reload": [<group>, ...]}`` after a
  hello or an open: replayed events come before it. ``reload`` lists the groups whose missed events cannot be
  replayed (joined for the first time, backlog trimmed, counter reset): the client reloads their snapshot over
  HTTP (state or conversation) instead;
* ``{"type": "error", "code", "conversation_id"?}``;
* ``{"type": "ping"}`` every ``PING_SECONDS`` (15): the client answers with a heartbeat. The server keeps the beat
  because browsers slow down timers in background tabs (Chrome: once a minute), which would let the presence
  sweep take a working agent offline; a socket message is delivered at once. A browser that is gone answers
  nothing, so the heartbeats stop and the sweep still takes the agent offline within a minute.

Events that arrive between the handshake and the hello are dropped: the replay read during the hello contains
them (or, for a group joined for the first time, the snapshot the client then loads does), and dropping keeps each
group's events in order. An event recorded before the replay was read may still arrive live after it: the same
``(group, seq)``, which the client drops. Ticket events can arrive on two groups; the client keeps the highest
``(ticket.id, ticket.version)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from core import realtime
from core.errors import ApplicationError

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
HEARTBEAT_MIN_GAP = 5.0  # seconds; the console beats every ~15 s
PING_SECONDS = 15.0


def console_groups(user) -> list[str] | None:
    """The realtime groups of a console user, or None when the user may not use the console."""
    from routing import selectors
    from routing.services import SUPERVISORS, agent_channel, group_channel

    supervisor = selectors.is_supervisor(user)
    profile = selectors.agent_profile(user)
    if profile is None and not supervisor:
        return None
    groups = [agent_channel(user.pk)]
    groups += [group_channel(g) for g in selectors.agent_group_ids(user)]
    if supervisor:
        groups.append(SUPERVISORS)
    return groups


def replay(since: dict[str, Any], groups: list[str]) -> tuple[list[dict], dict[str, int], list[str]]:
    """Events of ``groups`` after the client's ``since`` numbers: (envelopes, last seq per group, groups to
    reload because their gap cannot be replayed)."""
    envelopes: list[dict] = []
    seqs: dict[str, int] = {}
    reload: list[str] = []
    for group in groups:
        last = realtime.last_seq(group)
        seqs[group] = last
        given = since.get(group)
        if not isinstance(given, int) or isinstance(given, bool) or given < 0 or given > last:
            reload.append(group)  # new subscription, or the counter was reset (Redis flushed)
            continue
        if given == last:
            continue
        missed = realtime.events_since(group, given)
        if not missed or missed[0]["seq"] != given + 1:
            reload.append(group)  # the backlog no longer reaches back that far
        envelopes += missed
        seqs[group] = max(last, missed[-1]["seq"] if missed else 0)
    return envelopes, seqs, reload


class ConsoleConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        groups = await database_sync_to_async(console_groups)(user)
        if groups is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.user_id = user.pk
        self.groups_joined = groups
        self.conversation_group: str | None = None
        self.greeted = False  # events before the hello are dropped (see the module doc)
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self._heartbeat()
        self.pinger = asyncio.ensure_future(self._ping())

    async def disconnect(self, code):
        # never set the agent offline here: a reload would re-queue their work; the presence sweep does it
        pinger = getattr(self, "pinger", None)
        if pinger is not None:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pinger
        for group in [*getattr(self, "groups_joined", []), getattr(self, "conversation_group", None)]:
            if group:
                await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "hello":
            await self._hello(content)
        elif kind == "open":
            await self._open(content.get("conversation_id"), content.get("since"))
        elif kind == "close":
            await self._leave()
        elif kind == "heartbeat":
            await self._heartbeat()
        else:
            await self.send_json({"type": "error", "code": "unknown_message"})

    async def realtime_event(self, event):
        if self.greeted:
            await self.send_json(event["envelope"])

    # --- steps -----------------------------------------------------------------------------------------------

    async def _hello(self, content: dict) -> None:
        since = content.get("since") if isinstance(content.get("since"), dict) else {}
        envelopes, seqs, reload = await database_sync_to_async(replay)(since, self.groups_joined)
        conversation_id = content.get("conversation_id")
        opened = None
        if conversation_id is not None:
            opened = await self._join_conversation(conversation_id)
            if opened is not None:
                more, conv_seqs, conv_reload = await database_sync_to_async(replay)(since, [opened])
                envelopes += more
                seqs.update(conv_seqs)
                reload += conv_reload
        for envelope in envelopes:
            await self.send_json(envelope)
        self.greeted = True
        await self.send_json(
            {
                "type": "ready",
                "conversation_id": conversation_id if opened else None,
                "seq": seqs,
                "reload": reload,
            }
        )

    async def _open(self, conversation_id: Any, since: Any) -> None:
        group = await self._join_conversation(conversation_id)
        if group is None:
            return
        envelopes, seqs, reload = await database_sync_to_async(replay)(
            {group: since} if since is not None else {}, [group]
        )
        for envelope in envelopes:
            await self.send_json(envelope)
        await self.send_json({"type": "ready", "conversation_id": conversation_id, "seq": seqs, "reload": reload})

    async def _join_conversation(self, conversation_id: Any) -> str | None:
        """Watch ``conversation.<id>`` if the user may see it (else an ``error`` and None)."""
        if not isinstance(conversation_id, int) or isinstance(conversation_id, bool):
            await self.send_json({"type": "error", "code": "invalid"})
            return None
        if not await database_sync_to_async(_may_see_conversation)(self.user_id, conversation_id):
            await self.send_json({"type": "error", "code": "not_found", "conversation_id": conversation_id})
            return None
        group = realtime.conversation_group(conversation_id)
        if group != self.conversation_group:
            await self._leave()
            await self.channel_layer.group_add(group, self.channel_name)
            self.conversation_group = group
        return group

    async def _leave(self) -> None:
        if self.conversation_group:
            await self.channel_layer.group_discard(self.conversation_group, self.channel_name)
            self.conversation_group = None

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(PING_SECONDS)
            await self.send_json({"type": "ping"})

    async def _heartbeat(self) -> None:
        from routing.services import agent_heartbeat

        now = time.monotonic()
        if now - getattr(self, "last_beat", -HEARTBEAT_MIN_GAP) < HEARTBEAT_MIN_GAP:
            return  # a client sending faster than this gains nothing and costs a write each
        self.last_beat = now
        try:
            await database_sync_to_async(agent_heartbeat)(self.user_id)
        except Exception:  # a failed heartbeat must not drop the socket; the next one retries
            logger.exception("heartbeat failed", extra={"user_id": self.user_id})


def _may_see_conversation(user_id: int, conversation_id: int) -> bool:
    from routing import selectors

    try:
        selectors.conversation_for_agent(user_id, conversation_id)
    except ApplicationError:
        return False
    return True
