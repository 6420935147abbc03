"""WebSocket consumers: thin; authenticate, join a group, replay what the client missed, forward events."""

import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from core import logging as klog
from core import realtime
from core.permissions import can_use_simulator

logger = logging.getLogger(__name__)


class SimulatorConsumer(AsyncJsonWebsocketConsumer):
    """Events of one simulated customer: ``ws/simulator/<customer_id>/?since=<seq>``."""

    async def connect(self):
        user = self.scope.get("user")
        if not await database_sync_to_async(can_use_simulator)(user):
            await self.close(code=4401)
            return
        customer_id = self.scope["url_route"]["kwargs"]["customer_id"]
        if not await self._is_web_customer(customer_id):
            await self.close(code=4404)
            return
        self.group = realtime.customer_group(customer_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        since = _since(self.scope.get("query_string", b""))
        if since is not None:
            for envelope in await database_sync_to_async(realtime.events_since)(self.group, since):
                await self.send_json(envelope)

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def realtime_event(self, event):
        envelope = event["envelope"]
        payload = envelope.get("payload", {})
        with klog.bound(message_id=payload.get("id"), conversation_id=payload.get("conversation_id")):
            logger.debug("socket event", extra={"event": envelope.get("event"), "seq": envelope.get("seq")})
        await self.send_json(envelope)

    @database_sync_to_async
    def _is_web_customer(self, customer_id: int) -> bool:
        from bots.selectors import web_customer_get

        return web_customer_get(customer_id=customer_id) is not None


def _since(query_string: bytes) -> int | None:
    from urllib.parse import parse_qs

    values = parse_qs(query_string.decode()).get("since")
    try:
        return int(values[0]) if values else None
    except ValueError:
        return None
