"""Access tokens in Redis: one token per channel shared by every worker, refreshed by one worker at a time.

Implements the adapters' ``bots.channels.base.TokenStore`` protocol. Keys: ``kefu:tok:<channel slug>:<adapter
key>`` (the adapter key names the app or corp, e.g. ``wechat:oa:<appid>:access_token``) with the token's own TTL,
and ``…:lock`` for the refresh lock (redis-py ``Lock``, which expires by itself if its holder dies).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import redis
from redis.exceptions import LockError

from bots.channels.base import ApiError
from core import redis as kredis

logger = logging.getLogger(__name__)

LOCK_TIMEOUT_SECONDS = 10  # a refresh holding the lock longer than this loses it (the holder died)
LOCK_WAIT_SECONDS = 15  # how long a worker waits for another one's refresh before giving up (retryable)


class RedisTokenStore:
    def __init__(
        self,
        *,
        channel: str,
        client: redis.Redis | None = None,
        lock_timeout: float = LOCK_TIMEOUT_SECONDS,
        lock_wait: float = LOCK_WAIT_SECONDS,
    ) -> None:
        self.channel = channel
        self._client = client
        self.lock_timeout = lock_timeout
        self.lock_wait = lock_wait

    @property
    def client(self) -> redis.Redis:
        return self._client or kredis.client()

    def _key(self, key: str) -> str:
        return kredis.key("tok", self.channel, key)

    def get(self, key: str) -> str | None:
        value = self.client.get(self._key(key))
        if value is None:
            return None
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)

    def set(self, key: str, value: str, ttl: int) -> None:
        self.client.set(self._key(key), value, ex=max(int(ttl), 1))

    def delete(self, key: str) -> None:
        self.client.delete(self._key(key))

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Serialise refreshes of ``key`` across workers. Waiting too long raises a retryable ``ApiError``."""
        lock = self.client.lock(
            self._key(key) + ":lock", timeout=self.lock_timeout, blocking_timeout=self.lock_wait, thread_local=False
        )
        if not lock.acquire():
            raise ApiError("another worker is refreshing the access token", code="token_lock_busy", retryable=True)
        try:
            yield
        finally:
            try:
                lock.release()
            except LockError:  # held longer than lock_timeout: another worker may have refreshed meanwhile
                logger.warning("token refresh lock expired before release", extra={"channel": self.channel})
