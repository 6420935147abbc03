"""The contract every channel adapter fulfils.

An adapter turns one HTTP request from a channel into zero or more ``InboundMessage`` (verify, parse), and
sends one outgoing text (``send``). Adapters know protocols, not the database: the webhook view stores what
the adapter returns through ``bots.services.message_receive`` and the outbox task calls ``send``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Protocol


class ChannelError(Exception):
    """A protocol-level failure. ``status`` is the HTTP status the webhook answers with."""

    def __init__(self, message: str, *, code: str = "channel_error", status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


class SignatureError(ChannelError):
    def __init__(self, message: str = "invalid signature") -> None:
        super().__init__(message, code="bad_signature", status=403)


class ApiError(ChannelError):
    """A channel API call (token, sync, send) failed. ``errcode`` is the platform's code when it sent one."""

    def __init__(
        self, message: str, *, errcode: int | None = None, retryable: bool = True, code: str = "api_error"
    ) -> None:
        super().__init__(message, code=code, status=502)
        self.errcode = errcode
        self.retryable = retryable


class SendError(Exception):
    """Sending failed. ``retryable`` False means retrying can never succeed (block the outbox row)."""

    def __init__(self, message: str, *, retryable: bool = True, code: str = "send_failed") -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.code = code


MESSAGE_TYPES = ("text", "image", "voice", "video", "location", "link", "event", "file", "unsupported")


@dataclasses.dataclass(frozen=True)
class InboundMessage:
    """A customer message in the common model, whatever channel it came from."""

    external_id: str  # dedupe key, unique per channel
    sender_id: str  # the customer's id on the channel (openid, external_userid, wxid, web customer id)
    type: str  # one of MESSAGE_TYPES
    text: str = ""  # text content, voice recognition, link title, event key...
    sent_at: dt.datetime | None = None
    nickname: str = ""
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)  # media ids, urls, event names, room id


@dataclasses.dataclass(frozen=True)
class OutgoingMessage:
    """One text to deliver to a customer. ``idempotency_key`` is stable across retries of the same outbox row."""

    recipient_id: str
    text: str
    idempotency_key: str
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class SendResult:
    external_id: str = ""
    raw: dict[str, Any] = dataclasses.field(default_factory=dict)


class ChannelAdapter:
    """Base class; one subclass per channel kind, registered in ``bots.channels.registry``."""

    kind: ClassVar[str] = ""

    def __init__(self, *, slug: str, config: dict[str, Any]) -> None:
        self.slug = slug
        self.config = config

    def send(self, message: OutgoingMessage) -> SendResult:
        raise NotImplementedError


def from_unix(value: Any) -> dt.datetime | None:
    """Unix seconds (int or numeric string) to an aware UTC datetime; ``None`` when missing or not a number."""
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        return None
    if seconds <= 0:
        return None
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


class TokenStore(Protocol):
    """Where access tokens are cached, shared by every worker (the Django layer plugs Redis in).

    ``lock(key)`` must be a context manager that serialises token refreshes for ``key`` across workers
    (``redis.Redis.lock(key + ":lock", timeout=10)`` fits).
    """

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str, ttl: int) -> None: ...

    def lock(self, key: str) -> contextlib.AbstractContextManager[Any]: ...


class MemoryTokenStore:
    """A per-process ``TokenStore`` for tests and single-process development."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._values: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._guard:
            item = self._values.get(key)
            if item is None:
                return None
            value, expires_at = item
            if self._clock() >= expires_at:
                del self._values[key]
                return None
            return value

    def set(self, key: str, value: str, ttl: int) -> None:
        with self._guard:
            self._values[key] = (value, self._clock() + max(int(ttl), 1))

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            yield


_default_token_store = MemoryTokenStore()


def default_token_store() -> MemoryTokenStore:
    """The process-wide store used when an adapter is built without one."""
    return _default_token_store
