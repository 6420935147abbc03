"""Keyword rule matching over an in-memory snapshot that every worker reloads when the version key moves."""

from __future__ import annotations

import dataclasses
import re
import threading

from core import redis as kredis

VERSION_KEY = kredis.key("ver", "keyword_rules")


@dataclasses.dataclass(frozen=True)
class RuleSnapshot:
    id: int
    keyword: str
    match_type: str
    reply: str
    priority: int
    pattern: re.Pattern | None = None

    def matches(self, text: str) -> bool:
        if self.match_type == "exact":
            return text == self.keyword.strip().lower()
        if self.match_type == "regex":
            return bool(self.pattern and self.pattern.search(text))
        return any(word and word in text for word in self.keyword.lower().split("|"))


class RuleCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: str | None = None
        self._rules: list[RuleSnapshot] = []

    def rules(self) -> list[RuleSnapshot]:
        version = current_version()
        if version != self._version or self._version is None:
            with self._lock:
                self._rules = _load()
                self._version = version
        return self._rules

    def reset(self) -> None:
        with self._lock:
            self._version = None


def _load() -> list[RuleSnapshot]:
    from knowledge.models import KeywordRule

    snapshots = []
    for rule in KeywordRule.objects.filter(enabled=True).order_by("-priority", "id"):
        pattern = None
        if rule.match_type == "regex":
            try:
                pattern = re.compile(rule.keyword, re.IGNORECASE)
            except re.error:
                continue
        snapshots.append(RuleSnapshot(rule.id, rule.keyword, rule.match_type, rule.reply, rule.priority, pattern))
    return snapshots


def current_version() -> str:
    from django.conf import settings

    if settings.KEFU_EMBEDDED:
        return _local_version
    return kredis.client().get(VERSION_KEY) or "0"


_local_version = "0"


def bump_version() -> None:
    global _local_version
    from django.conf import settings

    if settings.KEFU_EMBEDDED:
        _local_version = str(int(_local_version) + 1)
        return
    kredis.client().incr(VERSION_KEY)


cache = RuleCache()
