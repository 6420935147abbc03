"""The Redis broker transport with one Redis client per channel.

kombu's Redis channel builds a new ``redis.Redis`` client object for every command it runs outside its polling
loop — each publish (the webhook queueing a message) and each ack and "unacked" bookkeeping step of a task — and
constructing a client is not cheap in redis-py 8 (its response-callback tables are rebuilt each time): py-spy put
it at about a fifth of the Celery worker main process's CPU under the load test. This transport keeps the
synchronous client of a channel once built (a client is a thin, thread-safe front of the channel's connection
pool, which kombu already shares); everything else is kombu's.

``config.celery`` registers it as the ``redis`` (and ``rediss``) transport, so ``CELERY_BROKER_URL=redis://…``
works as before.
"""

from __future__ import annotations

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _kefu_sync_client = None

    def _create_client(self, asynchronous: bool = False):
        if asynchronous:
            return super()._create_client(asynchronous=True)
        if self._kefu_sync_client is None:
            self._kefu_sync_client = super()._create_client(asynchronous=False)
        return self._kefu_sync_client

    def _close_clients(self):
        self._kefu_sync_client = None
        return super()._close_clients()


class Transport(kombu_redis.Transport):
    Channel = Channel


def register() -> None:
    """Make ``redis://`` and ``rediss://`` broker URLs use this transport."""
    for scheme in ("redis", "rediss"):
        TRANSPORT_ALIASES[scheme] = "core.broker:Transport"
