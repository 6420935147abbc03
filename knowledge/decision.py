"""What the knowledge app answers with: a Decision for a text in a context."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class DecisionContext:
    conversation_id: int | None = None
    channel_slug: str = ""
    nickname: str = ""
    message_type: str = "text"


@dataclasses.dataclass(frozen=True)
class Decision:
    kind: str  # answer | clarify | form_step | handoff | fallback | ignore
    reply: str
    trace: dict[str, Any]

    KINDS = ("answer", "clarify", "form_step", "handoff", "fallback", "ignore")
