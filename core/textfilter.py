"""Sensitive-word matching for both directions (customer messages in, bot/agent replies out).

Pure Python, no Django: the services that own word lists build a ``Matcher`` per list version, cache it,
and call ``scan`` on every message. The matcher does not know the direction; the caller decides what
a hit means for an inbound or an outbound message.

API
---
``Word(text, category, action)``
    One list entry. ``action`` is an ``Action`` (or its string value): ``block``, ``handoff``, ``mask``
    or ``flag``. An unknown action raises ``ValueError`` when the word is created.
``Matcher.build(words, *, pinyin_initials=False, allow=()) -> Matcher``
    Normalises every word exactly like message text (below), ignores words that are empty once
    normalised, drops duplicates (same normalised text, category and action) and compiles ONE
    Aho-Corasick automaton (pyahocorasick). A matcher is immutable: build a new one for a new list
    version and cache it by that version. ``allow`` is an optional allow-list of phrases: a hit lying
    wholly inside an occurrence of an allowed phrase is dropped (``三级`` inside ``三级跳``).
``matcher.scan(text) -> ScanResult``
    ``hits``: ``list[Hit]`` sorted by position; ``Hit(word, category, action, start, end, via_pinyin)``
    where ``word`` is the list entry as written and ``start:end`` is the span in the ORIGINAL text.
    ``action``: the strongest action among the hits (``block > handoff > mask > flag > none``).
    ``masked_text``: the original text with every code point inside a ``mask`` or ``block`` hit
    (separators inside the hit included) replaced by ``＊`` (U+FF0A); everything else is kept as the
    customer wrote it, so ``len(masked_text) == len(text)`` and hit spans stay valid in it.
    ``blocked``: ``action is Action.BLOCK``. ``scan`` never raises on any ``str`` (``None`` counts as "").
``scan_all(matchers, text) -> ScanResult``
    Several lists (e.g. one with pinyin initials, one without) merged into one result.
``normalize(text)`` / ``normalize_with_map(text)``
    The matching form of a text, and the same with, for each of its characters, the index of the
    original character it came from.

Normalisation (O(n): each code point through one shared, lazily filled table)
-------------------------------------------------------------------------------
``scan`` runs ``str.translate`` with the table and the automaton, both in C. Only when something
matched does it build the map back to the original text: the running count of normalised characters
per original character (``itertools.accumulate``, also C speed); a normalised position maps back with
one ``bisect``. Per code point:
NFKC (full width ``ＶＸ`` -> ``VX``, circled ``Ⓥ`` -> ``V``, ideographic space), traditional ->
simplified per character (OpenCC ``t2s``, one cached converter; phrase-level conversions are not
applied, which is fine because words and text go through the same table), case folding, Latin
diacritics folded (``wēi`` -> ``wei``), and SEPARATORS DELETED. A separator is any code point whose
Unicode category is punctuation (P*), symbol (S*: ``*+~|$^``, emoji, ``©``), separator/space (Z*),
other (C*: controls, zero-width spaces/joiners, BOM, private use, unassigned, i.e. emoji newer than
the Unicode tables) or mark (M*: combining accents, variation selectors, "Zalgo"), plus ``丶``. So
``微*信``, ``微 信``, ``微😀信``, ``V 信``, ``加 v x`` match ``微信``/``v信``/``加vx``. Letters and
digits of every script are kept: ``微1信`` and ``微x信`` do NOT match ``微信``.

Limits (false positives and negatives, by design)
--------------------------------------------------
* Latin/digit word edges: a hit whose first (last) character is a letter of an alphabetic script
  is dropped when it directly touches another letter in the text (digit: another digit), with no
  separator between, so ``sb`` does not fire in ``asbestos``/``is bad``, ``vx`` not in ``devxml``,
  ``110`` not in ``21105``; but ``qq12345``, ``加vx``, ``s b`` still match. CJK (U+2E80 and above)
  has no word boundaries, so a CJK word matches inside any run (``微信`` in ``稍微信任``): use
  ``allow`` phrases for known innocent runs, and prefer ``flag`` for short ambiguous words.
* Because separators are deleted, a word can match across punctuation (``稍微。信任``).
* Not handled: homophones/variant characters (``薇信``, ``威信``), Cyrillic/Greek look-alikes,
  letters or digits used as padding (``微x信``), full pinyin (``weixin``): list them as words.
* Pinyin initials (``pinyin_initials=True``, needs ``pypinyin``): each word with at least one CJK
  character also matches the first letters of its default reading (``微信`` -> ``wx``, ``加v信`` ->
  ``jvx``). Off by default: two or three Latin letters are very common (``wx``, ``qq``, ``ok``), so
  this fires on unrelated text despite the edge rule above. Initials shorter than 2 letters are not
  added; heteronyms use pypinyin's default (phrase-aware) reading only.
* Overlapping and nested hits are all reported (``微信`` and ``加微信`` both hit in ``加微信``).
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from itertools import accumulate
from typing import Any, NamedTuple

import ahocorasick

from core.chinese import to_simplified

__all__ = [
    "MASK_CHAR",
    "Action",
    "Hit",
    "Matcher",
    "ScanResult",
    "Word",
    "normalize",
    "normalize_with_map",
    "scan_all",
]

MASK_CHAR = "\uff0a"  # ＊ FULLWIDTH ASTERISK


class Action(StrEnum):
    """What a hit asks for. Strength: block > handoff > mask > flag > none."""

    NONE = "none"
    FLAG = "flag"
    MASK = "mask"
    HANDOFF = "handoff"
    BLOCK = "block"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Action.NONE: 0, Action.FLAG: 1, Action.MASK: 2, Action.HANDOFF: 3, Action.BLOCK: 4}
_MASKING = frozenset({Action.MASK, Action.BLOCK})


@dataclass(frozen=True, slots=True)
class Word:
    """One entry of a word list."""

    text: str
    category: str
    action: Action

    def __post_init__(self) -> None:
        action = Action(self.action)
        if action is Action.NONE:
            raise ValueError("a word needs an action: block, handoff, mask or flag")
        object.__setattr__(self, "action", action)


@dataclass(frozen=True, slots=True)
class Hit:
    """One match; ``start:end`` is the span in the original text."""

    word: str
    category: str
    action: Action
    start: int
    end: int
    via_pinyin: bool = False


@dataclass(frozen=True, slots=True)
class ScanResult:
    text: str
    hits: list[Hit]
    action: Action
    masked_text: str

    @property
    def blocked(self) -> bool:
        return self.action is Action.BLOCK


# --------------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------------

_SEPARATOR_CATEGORY_CLASSES = frozenset("ZPSCM")
_EXTRA_SEPARATORS = frozenset("丶")
# Distinct code points whose normal form is kept in the shared table. CJK text uses a few thousand;
# past the limit (someone sending the whole of Unicode) entries are computed each time, not stored.
_TABLE_LIMIT = 1 << 16


def _is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return 0x3400 <= cp <= 0x9FFF or 0x20000 <= cp <= 0x3FFFF or 0xF900 <= cp <= 0xFAFF


def _normalise_char(ch: str) -> str:
    """The matching form of one code point: "" for a separator, usually one character, sometimes more."""
    try:
        out = []
        for c in unicodedata.normalize("NFKC", ch):
            for d in (to_simplified(c) if _is_cjk(c) else c).casefold():
                if d in _EXTRA_SEPARATORS or unicodedata.category(d)[0] in _SEPARATOR_CATEGORY_CLASSES:
                    continue
                if not d.isascii() and ord(d) < 0x2E80:
                    base = unicodedata.normalize("NFD", d)
                    if len(base) > 1 and base[0].isascii():
                        d = base[0]  # é -> e, ǖ -> u (the rest of an NFD form of a letter is marks)
                out.append(d)
        return "".join(out)
    except Exception:  # noqa: BLE001 - a character we cannot normalise is treated as a separator
        return ""


class _CharTable(dict):
    """ord -> matching form, filled on first sight; used by ``str.translate`` and the index map."""

    def __missing__(self, key: int) -> str:
        value = _normalise_char(chr(key))
        if len(self) < _TABLE_LIMIT:
            self[key] = value
        return value


_TABLE = _CharTable()


def normalize(text: str) -> str:
    """The matching form of ``text`` (see the module docstring)."""
    return text.translate(_TABLE) if text else ""


def _cumulative(text: str) -> list[int]:
    """``cum[i]``: how many normalised characters ``text[: i + 1]`` produces. Built at C speed (no Python
    loop); the original position of normalised character ``p`` is ``bisect_right(cum, p)``."""
    return list(accumulate(map(len, map(_TABLE.__getitem__, map(ord, text)))))


def normalize_with_map(text: str) -> tuple[str, list[int]]:
    """``(normalized, index)``: ``index[i]`` is the position in ``text`` of the character that
    produced ``normalized[i]``. O(len(text))."""
    text = text or ""
    index: list[int] = []
    previous = 0
    for i, total in enumerate(_cumulative(text)):
        index.extend([i] * (total - previous))
        previous = total
    return text.translate(_TABLE), index


def _edge_class(ch: str) -> int:
    """1 for a letter of an alphabetic (space-separated) script, 2 for a digit, 0 otherwise (CJK...)."""
    if ord(ch) >= 0x2E80:
        return 0
    if ch.isalpha():
        return 1
    if ch.isdigit():
        return 2
    return 0


# --------------------------------------------------------------------------------------------------
# Matcher
# --------------------------------------------------------------------------------------------------


class _Pattern(NamedTuple):
    """Value stored in the automaton for one normalised key."""

    length: int
    left: int  # _edge_class of the first character (0: no boundary check)
    right: int  # _edge_class of the last character
    targets: tuple[tuple[Word, bool], ...]  # (word, via_pinyin)
    allow: bool


def _pinyin_initials(key: str) -> str:
    try:
        from pypinyin import Style, lazy_pinyin
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("pinyin_initials=True needs the pypinyin package") from exc
    return normalize("".join(lazy_pinyin(key, style=Style.FIRST_LETTER)))


class Matcher:
    """One compiled word list (one version). Build with ``Matcher.build``; immutable and thread-safe."""

    __slots__ = ("_automaton", "words", "pinyin_initials", "allow", "pattern_count")

    def __init__(
        self,
        automaton: Any,
        *,
        words: tuple[Word, ...],
        pinyin_initials: bool,
        allow: tuple[str, ...],
        pattern_count: int,
    ) -> None:
        self._automaton = automaton
        self.words = words
        self.pinyin_initials = pinyin_initials
        self.allow = allow
        self.pattern_count = pattern_count

    @classmethod
    def build(cls, words: Iterable[Word], *, pinyin_initials: bool = False, allow: Iterable[str] = ()) -> Matcher:
        targets: dict[str, dict[tuple[str, Action, bool], Word]] = {}
        kept: list[Word] = []

        def add(key: str, word: Word, via_pinyin: bool) -> bool:
            slot = targets.setdefault(key, {})
            ident = (word.category, word.action, via_pinyin)
            if ident in slot:
                return False
            slot[ident] = word
            return True

        for word in words:
            key = normalize(word.text)
            if not key or not add(key, word, False):
                continue
            kept.append(word)
            if pinyin_initials and any(_is_cjk(c) for c in key):
                initials = _pinyin_initials(key)
                if len(initials) >= 2 and initials != key:
                    add(initials, word, True)

        allowed = tuple(dict.fromkeys(a for a in (normalize(p) for p in allow) if a))
        allow_keys = set(allowed)
        keys = set(targets) | allow_keys
        automaton = None
        if keys:
            automaton = ahocorasick.Automaton()
            for key in keys:
                pattern = _Pattern(
                    length=len(key),
                    left=_edge_class(key[0]),
                    right=_edge_class(key[-1]),
                    targets=tuple((w, via) for (_, _, via), w in targets.get(key, {}).items()),
                    allow=key in allow_keys,
                )
                automaton.add_word(key, pattern)
            automaton.make_automaton()
        return cls(
            automaton,
            words=tuple(kept),
            pinyin_initials=pinyin_initials,
            allow=allowed,
            pattern_count=len(keys),
        )

    def scan(self, text: str) -> ScanResult:
        text = text or ""
        return _result(text, self._hits(text))

    def _hits(self, text: str) -> list[Hit]:
        if not text or self._automaton is None:
            return []
        # Fast path: C-speed translate + automaton; the index map is only built when something matched.
        norm = text.translate(_TABLE)
        found = list(self._automaton.iter(norm))
        if not found:
            return []
        cum = _cumulative(text)
        size = len(norm)
        allowed: list[tuple[int, int]] = []
        candidates: list[tuple[int, int, _Pattern]] = []
        for last, pattern in found:
            start, end = last - pattern.length + 1, last + 1
            if pattern.allow:
                allowed.append((start, end))
            if not pattern.targets:
                continue
            # Edge rule: a Latin/digit edge must not touch a character of the same class with no
            # separator between them (their original positions are consecutive or equal).
            if (
                pattern.left
                and start > 0
                and _edge_class(norm[start - 1]) == pattern.left
                and bisect_right(cum, start) - bisect_right(cum, start - 1) <= 1
            ):
                continue
            if (
                pattern.right
                and end < size
                and _edge_class(norm[end]) == pattern.right
                and bisect_right(cum, end) - bisect_right(cum, end - 1) <= 1
            ):
                continue
            candidates.append((start, end, pattern))

        hits: list[Hit] = []
        for start, end, pattern in candidates:
            if any(a <= start and end <= b for a, b in allowed):
                continue
            span_start, span_end = bisect_right(cum, start), bisect_right(cum, end - 1) + 1
            for word, via_pinyin in pattern.targets:
                hits.append(Hit(word.text, word.category, word.action, span_start, span_end, via_pinyin))
        return hits


def _result(text: str, hits: list[Hit]) -> ScanResult:
    if not hits:
        return ScanResult(text=text, hits=[], action=Action.NONE, masked_text=text)
    hits.sort(key=lambda h: (h.start, h.end, -h.action.rank, h.word, h.category))
    action = max((h.action for h in hits), key=_RANK.__getitem__)
    masked = text
    spans = [(h.start, h.end) for h in hits if h.action in _MASKING]
    if spans:
        chars = list(text)
        for start, end in spans:
            chars[start:end] = MASK_CHAR * (end - start)
        masked = "".join(chars)
    return ScanResult(text=text, hits=hits, action=action, masked_text=masked)


def scan_all(matchers: Iterable[Matcher], text: str) -> ScanResult:
    """Scan ``text`` with several matchers (lists) and merge: all hits, strongest action, one mask."""
    text = text or ""
    hits: list[Hit] = []
    for matcher in matchers:
        hits.extend(matcher._hits(text))
    return _result(text, hits)
