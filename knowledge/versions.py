"""Version keys (``kefu:ver:<thing>``) that tell every worker to reload what it keeps in memory.

A service that changes rules, FAQs, intent models or the catalogue calls ``bump(name)`` after commit; each
worker reads all versions in one round trip per message (``snapshot``) and a :class:`Versioned` cache
reloads when its version moved. Versions are ``<epoch>:<counter>``: the epoch is a random id stored in Redis,
so after a Redis flush (counters back at 0) no worker can mistake new data for what it already holds.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Generic, TypeVar

from django.conf import settings

from core import redis as kredis

NAMES = ("keyword_rules", "faq", "intents", "catalog")
EPOCH_KEY = kredis.key("ver", "epoch")

T = TypeVar("T")
STALE_OK = "stale-ok"  # pass to Versioned.get when the versions cannot be read: keep what is loaded

_local = dict.fromkeys(NAMES, 0)  # embedded mode (no Redis): one process, counters in memory
_local_lock = threading.Lock()


def key(name: str) -> str:
    return kredis.key("ver", name)


def snapshot() -> dict[str, str]:
    """``{name: version}`` for every name, in one Redis round trip."""
    return snapshot_with([])[0]


def snapshot_with(keys: list[str]) -> tuple[dict[str, str], list[str | None]]:
    """The versions and the values of other string ``keys`` (e.g. a dialogue context), in one round trip."""
    if settings.KEFU_EMBEDDED:
        return {name: f"local:{value}" for name, value in _local.items()}, [None] * len(keys)
    client = kredis.client()
    epoch, *values = client.mget([EPOCH_KEY, *(key(name) for name in NAMES), *keys])
    if epoch is None:
        client.set(EPOCH_KEY, uuid.uuid4().hex, nx=True)
        epoch = client.get(EPOCH_KEY) or "none"
    found = {name: f"{epoch}:{value or 0}" for name, value in zip(NAMES, values[: len(NAMES)], strict=True)}
    return found, list(values[len(NAMES) :])


def current(name: str) -> str:
    return snapshot()[name]


def bump(*names: str) -> None:
    """Move the version of each name (call after commit): every worker reloads on its next message."""
    for name in names:
        if name not in NAMES:
            raise ValueError(f"unknown version name {name!r}")
    if settings.KEFU_EMBEDDED:
        with _local_lock:
            for name in names:
                _local[name] += 1
        return
    pipe = kredis.client().pipeline()
    for name in names:
        pipe.incr(key(name))
    pipe.execute()


class Versioned(Generic[T]):
    """A value built by ``loader()`` and rebuilt when its version changes; thread-safe, one build at a time."""

    def __init__(self, name: str, loader: Callable[[], T]) -> None:
        self.name = name
        self._loader = loader
        self._lock = threading.Lock()
        self._version: str | None = None
        self._value: T | None = None

    def get(self, version: str | None = None) -> T:
        version = current(self.name) if version is None else version
        if version == STALE_OK and self._version is not None:
            return self._value  # type: ignore[return-value]
        if self._version != version:
            with self._lock:
                if self._version != version:
                    self._value = self._loader()
                    self._version = version
        return self._value  # type: ignore[return-value]

    def peek(self) -> T | None:
        """The value held now, without checking the version or building."""
        return self._value

    @property
    def version(self) -> str | None:
        return self._version

    def reset(self) -> None:
        with self._lock:
            self._version = None
            self._value = None


_caches: list[Versioned] = []


def cached(name: str, loader: Callable[[], T]) -> Versioned[T]:
    cache: Versioned[T] = Versioned(name, loader)
    _caches.append(cache)
    return cache


def reset_all() -> None:
    """Forget every in-process cache (tests, and the benchmark after it swaps the data)."""
    for cache in _caches:
        cache.reset()
