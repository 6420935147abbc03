"""Sensitive-word lists: the cached matchers every process scans with, and the writes that change the lists.

The lists live in the database (``core.SensitiveWordList`` / ``SensitiveWord``); matching is
``core.textfilter`` (pure, one Aho-Corasick automaton per list). Each process keeps one built ``Matcher`` per
``(list id, list version)`` and the matchers of every enabled list per direction. Any change to a list or its
words moves the list's ``version`` and, after commit, the Redis key ``kefu:ver:sensitive``; every process
re-reads the lists when that key moved and rebuilds only the lists whose version changed, so all workers
switch without a restart.

Hot path (``text_scan``): the Redis key is read at most once per ``KEFU_SENSITIVE_RECHECK_SECONDS`` (default
1 s) per process, so a scan is normally one dict lookup plus the automaton. Redis down: the loaded lists stay
in use. Versions are ``<epoch>:<counter>`` with the epoch shared with ``knowledge.versions`` (``kefu:ver:epoch``),
so a Redis flush cannot make a process keep an old list.

core imports no other app: applying a result to messages and the outbox is ``bots.services.screening``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _
from redis.exceptions import RedisError

from core import redis as kredis
from core.models import SensitiveAction, SensitiveHit, SensitiveWord, SensitiveWordList
from core.textfilter import Action, Matcher, ScanResult, Word, scan_all

VERSION_KEY = kredis.key("ver", "sensitive")
EPOCH_KEY = kredis.key("ver", "epoch")  # shared with knowledge.versions
INBOUND, OUTBOUND = "in", "out"
DIRECTIONS = (INBOUND, OUTBOUND)
REASON = "sensitive_word"  # Outbox.reason of a reply blocked by a word list

_EMPTY: tuple[Matcher, ...] = ()

# Words in an imported text file may name their action in English or Chinese.
ACTION_ALIASES = {
    **{a.value: a.value for a in SensitiveAction},
    "屏蔽": "block",
    "拦截": "block",
    "禁止": "block",
    "转人工": "handoff",
    "打码": "mask",
    "掩码": "mask",
    "替换": "mask",
    "标记": "flag",
    "审核": "flag",
}


# --- versions ------------------------------------------------------------------------------------------------

_local_counter = 0  # embedded mode (no Redis): one process


def version_current() -> str:
    """``<epoch>:<counter>`` of the word lists (one Redis round trip)."""
    if settings.KEFU_EMBEDDED:
        return f"local:{_local_counter}"
    client = kredis.client()
    epoch, value = client.mget([EPOCH_KEY, VERSION_KEY])
    if epoch is None:
        client.set(EPOCH_KEY, uuid.uuid4().hex, nx=True)
        epoch = client.get(EPOCH_KEY) or "none"
    return f"{epoch}:{value or 0}"


def version_bump() -> None:
    """Move ``kefu:ver:sensitive`` now (call after commit): every process reloads the lists."""
    global _local_counter
    if settings.KEFU_EMBEDDED:
        _local_counter += 1
    else:
        kredis.client().incr(VERSION_KEY)
    _cache.expire()  # this process does not wait for its recheck interval


# --- the per-process cache -----------------------------------------------------------------------------------


@dataclass
class _Loaded:
    version: str | None = None
    checked_at: float = 0.0
    by_direction: dict[str, tuple[Matcher, ...]] = field(default_factory=lambda: dict.fromkeys(DIRECTIONS, _EMPTY))
    by_list: dict[tuple[int, int], Matcher] = field(default_factory=dict)


class _Cache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = _Loaded()

    def expire(self) -> None:
        self._state.checked_at = 0.0

    def reset(self) -> None:
        with self._lock:
            self._state = _Loaded()

    def matchers(self, direction: str) -> tuple[Matcher, ...]:
        state = self._state
        now = time.monotonic()
        if state.version is None or now - state.checked_at >= _recheck_seconds():
            state = self._refresh(now)
        return state.by_direction[direction]

    @property
    def version(self) -> str | None:
        return self._state.version

    def _refresh(self, now: float) -> _Loaded:
        try:
            version = version_current()
        except RedisError:
            if self._state.version is not None:
                self._state.checked_at = now  # keep what is loaded; try again after the interval
                return self._state
            version = "unknown"
        with self._lock:
            state = self._state
            if state.version == version:
                state.checked_at = now
                return state
            self._state = _load(version, previous=state.by_list, now=now)
            return self._state


def _recheck_seconds() -> float:
    return float(getattr(settings, "KEFU_SENSITIVE_RECHECK_SECONDS", 1.0))


def _load(version: str, *, previous: dict[tuple[int, int], Matcher], now: float) -> _Loaded:
    """Matchers of every enabled list; a list whose version did not move keeps its built matcher."""
    lists = list(SensitiveWordList.objects.filter(enabled=True).order_by("id"))
    by_list: dict[tuple[int, int], Matcher] = {}
    by_direction: dict[str, list[Matcher]] = {d: [] for d in DIRECTIONS}
    for word_list in lists:
        key = (word_list.id, word_list.version)
        matcher = previous.get(key) or matcher_build(word_list)
        by_list[key] = matcher
        if matcher.pattern_count == 0:
            continue
        for direction in DIRECTIONS:
            if word_list.direction in (SensitiveWordList.Direction.BOTH, direction):
                by_direction[direction].append(matcher)
    return _Loaded(
        version=version,
        checked_at=now,
        by_direction={d: tuple(m) for d, m in by_direction.items()},
        by_list=by_list,
    )


def matcher_build(word_list: SensitiveWordList) -> Matcher:
    """One list's automaton from its enabled words."""
    rows = SensitiveWord.objects.filter(word_list=word_list, enabled=True).values_list("text", "category", "action")
    return Matcher.build(
        (Word(text, category, action) for text, category, action in rows.iterator(chunk_size=5000)),
        pinyin_initials=word_list.pinyin_initials,
        allow=word_list.allow_list,
    )


_cache = _Cache()


def cache_reset() -> None:
    """Forget the loaded lists in this process (tests)."""
    _cache.reset()


def text_scan(text: str, direction: str) -> ScanResult:
    """Scan ``text`` with every enabled list that applies to ``direction`` (``"in"`` or ``"out"``)."""
    matchers = _cache.matchers(direction)
    if not matchers or not text:
        return ScanResult(text=text or "", hits=[], action=Action.NONE, masked_text=text or "")
    return scan_all(matchers, text)


# --- results for traces, records and labels -------------------------------------------------------------------


def hit_summary(result: ScanResult) -> dict:
    """What a trace or message meta keeps of a result: the action and the list entries hit (no customer text)."""
    seen: dict[tuple[str, str, str], None] = {}
    for hit in result.hits:
        seen.setdefault((hit.word, hit.category, str(hit.action)), None)
    words = [{"word": w, "category": c, "action": a} for w, c, a in seen]
    return {
        "action": str(result.action),
        "words": words,
        "categories": list(dict.fromkeys(w["category"] for w in words if w["category"])),
        "masked": result.masked_text != result.text,
    }


def block_label(summary: dict) -> str:
    """The agent-facing reason of a blocked reply (which words, which categories), in the shop's language."""
    blocked = [w for w in summary.get("words", []) if w.get("action") == Action.BLOCK] or summary.get("words", [])
    words = "、".join(dict.fromkeys(w["word"] for w in blocked))
    categories = "、".join(dict.fromkeys(w["category"] for w in blocked if w.get("category")))
    with translation.override(settings.LANGUAGE_CODE):
        if categories:
            return str(_("Contains blocked words: %(words)s (%(categories)s)")) % {
                "words": words,
                "categories": categories,
            }
        return str(_("Contains blocked words: %(words)s")) % {"words": words}


def hit_record(
    *,
    direction: str,
    result: ScanResult,
    sender: str = "",
    conversation_id: int | None = None,
    message_id: int | None = None,
    outbox_id: int | None = None,
) -> SensitiveHit:
    summary = hit_summary(result)
    return SensitiveHit.objects.create(
        direction=direction,
        action=summary["action"],
        words=summary["words"],
        sender=sender,
        conversation_id=conversation_id,
        message_id=message_id,
        outbox_id=outbox_id,
    )


@transaction.atomic
def hits_review(*, hit_ids: Iterable[int], reviewer: str) -> int:
    return SensitiveHit.objects.filter(pk__in=list(hit_ids), reviewed=False).update(
        reviewed=True, reviewed_by=reviewer[:150], reviewed_at=timezone.now()
    )


# --- writes to the lists ---------------------------------------------------------------------------------------


def word_list_changed(*, word_list_id: int) -> None:
    """A list or its words changed: move its version and, after commit, the Redis key."""
    SensitiveWordList.objects.filter(pk=word_list_id).update(version=F("version") + 1, updated_at=timezone.now())
    transaction.on_commit(version_bump)


def lists_changed() -> None:
    """Something changed that is not tied to one list (a list deleted): every process reloads."""
    transaction.on_commit(version_bump)


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int
    unchanged: int
    deleted: int
    errors: list[str]


def parse_word_lines(text: str, *, default_category: str = "", default_action: str = SensitiveAction.FLAG):
    """``(rows, errors)`` of a word file: one word per line, optionally ``word<TAB>category<TAB>action``.
    Empty lines and lines starting with ``#`` are skipped; a later line for the same word wins."""
    rows: dict[str, tuple[str, str]] = {}
    errors: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip("\r\n\ufeff")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in line.split("\t")]
        word = parts[0][:100]
        category = (parts[1] if len(parts) > 1 and parts[1] else default_category)[:50]
        action_text = parts[2] if len(parts) > 2 and parts[2] else default_action
        action = ACTION_ALIASES.get(action_text.lower())
        if not word:
            errors.append(f"{number}: empty word")
            continue
        if action is None:
            errors.append(f"{number}: unknown action {action_text!r}")
            continue
        rows[word] = (category, action)
    return rows, errors


@transaction.atomic
def words_import(
    *,
    word_list: SensitiveWordList,
    text: str,
    default_category: str = "",
    default_action: str = SensitiveAction.FLAG,
    replace: bool = False,
) -> ImportResult:
    """Import a UTF-8 word file into a list (see ``parse_word_lines``). A file with an invalid line imports
    nothing. ``replace`` deletes the list's words that are not in the file."""
    rows, errors = parse_word_lines(text, default_category=default_category, default_action=default_action)
    if errors:
        return ImportResult(0, 0, 0, 0, errors)
    existing = {w.text: w for w in SensitiveWord.objects.filter(word_list=word_list)}
    new, changed, unchanged = [], [], 0
    for word, (category, action) in rows.items():
        current = existing.get(word)
        if current is None:
            new.append(SensitiveWord(word_list=word_list, text=word, category=category, action=action))
        elif (current.category, current.action, current.enabled) != (category, action, True):
            current.category, current.action, current.enabled = category, action, True
            changed.append(current)
        else:
            unchanged += 1
    SensitiveWord.objects.bulk_create(new, batch_size=2000)
    SensitiveWord.objects.bulk_update(changed, ["category", "action", "enabled"], batch_size=2000)
    deleted = 0
    if replace:
        deleted, _detail = SensitiveWord.objects.filter(word_list=word_list).exclude(text__in=list(rows)).delete()
    if new or changed or deleted:
        word_list_changed(word_list_id=word_list.id)
    return ImportResult(len(new), len(changed), unchanged, deleted, [])


def words_export(*, word_list: SensitiveWordList) -> str:
    """The list's words as a text file ``word<TAB>category<TAB>action`` (enabled words only), importable again."""
    rows = SensitiveWord.objects.filter(word_list=word_list, enabled=True).order_by("text")
    return "".join(f"{w.text}\t{w.category}\t{w.action}\n" for w in rows)
