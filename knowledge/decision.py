"""What the knowledge app answers with: a Decision for a text in a context."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any


@dataclasses.dataclass(frozen=True)
class DecisionContext:
    conversation_id: int | None = None
    channel_slug: str = ""
    nickname: str = ""
    message_type: str = "text"
    now: dt.datetime | None = None  # for rule time windows and FAQ validity; None = timezone.now()


@dataclasses.dataclass(frozen=True)
class Decision:
    kind: str  # answer | clarify | form_step | handoff | fallback | ignore
    reply: str
    trace: dict[str, Any]
    handoff_reason: str = ""  # kind "handoff": why (e.g. "human_request", "intent:人工客服")
    suggestions: tuple[str, ...] = ()  # kind "clarify": the numbered choices offered, in order
    link_url: str = ""  # an FAQ answer's link (already appended to ``reply`` as text)
    image_url: str = ""  # an FAQ answer's image, for channels that can send one

    KINDS = ("answer", "clarify", "form_step", "handoff", "fallback", "ignore")
