"""Channel kinds and their adapters. A new channel is one adapter module plus one line here."""

from __future__ import annotations

import inspect
from typing import Any

from bots.channels.base import ChannelAdapter, ChannelError
from bots.channels.bridge import BridgeAdapter
from bots.channels.oa import OfficialAccountAdapter
from bots.channels.web import WebAdapter
from bots.channels.wecom_kf import WecomKfAdapter

ADAPTERS: dict[str, type[ChannelAdapter]] = {
    "oa": OfficialAccountAdapter,
    "kf": WecomKfAdapter,
    "bridge": BridgeAdapter,
    "web": WebAdapter,
}


def adapter_for(kind: str, *, slug: str, config: dict[str, Any], **options: Any) -> ChannelAdapter:
    """Build the adapter for ``kind``.

    ``options`` (``token_store=``, ``session=``) are passed only to adapters whose constructor takes them, so
    callers can pass the same options for every kind. Unknown kinds raise ``ChannelError`` (404).
    """
    try:
        adapter_class = ADAPTERS[kind]
    except KeyError:
        raise ChannelError(f"unknown channel kind {kind!r}", code="unknown_channel", status=404) from None
    accepted = inspect.signature(adapter_class.__init__).parameters
    usable = {name: value for name, value in options.items() if name in accepted}
    return adapter_class(slug=slug, config=config, **usable)
