"""Keyword rule matching over an in-memory index that every worker rebuilds when the version key moves.

One Aho–Corasick automaton (pyahocorasick) holds the words of every "contains" and "all of" rule, so a
message is scanned once whatever the number of rules; "exact" rules are a dictionary lookup; regular
expressions run only for rules that could still beat the best match found so far. Scope (channel, date
range, daily hours) is checked on the candidates, highest priority first.

Regular expressions are checked on save (:func:`regex_problem`): compile errors and patterns prone to
catastrophic backtracking (nested or overlapping unbounded quantifiers) are refused, and matching only ever
sees normalised text of at most 1,000 characters.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import re._constants as sre_c  # noqa: PLC2701 - the stdlib's own regex parser, for the safety check
import re._parser as sre_parse  # noqa: PLC2701
from typing import Any

import ahocorasick

from knowledge import versions
from knowledge.ml.normalize import normalize

VERSION_KEY = versions.key("keyword_rules")
TEMPLATE_VARIABLES = ("nickname", "product")
MAX_REGEX_LENGTH = 500
_EXACT_STRIP = " \t。.!！?？~～,，、…"


def split_words(keyword: str) -> list[str]:
    """The normalised, non-empty words of a keyword field ("退货|退换" -> ["退货", "退换"])."""
    seen: list[str] = []
    for part in (keyword or "").split("|"):
        word = normalize(part)
        if word and word not in seen:
            seen.append(word)
    return seen


# -- regex safety ----------------------------------------------------------------------------------------


class _Unsafe(Exception):
    pass


_REPEATS = (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, getattr(sre_c, "POSSESSIVE_REPEAT", None))


def _first_chars(items: list) -> set[Any] | None:
    """Rough set of characters a sequence can start with; None means 'anything' (or unknown)."""
    for op, arg in items:
        if op == sre_c.LITERAL:
            return {arg}
        if op == sre_c.IN:
            chars = set()
            for sub_op, sub_arg in arg:
                if sub_op == sre_c.LITERAL:
                    chars.add(sub_arg)
                elif sub_op == sre_c.RANGE and sub_arg[1] - sub_arg[0] < 256:
                    chars.update(range(sub_arg[0], sub_arg[1] + 1))
                else:
                    return None
            return chars
        if op == sre_c.SUBPATTERN:
            return _first_chars(list(arg[-1]))
        if op in (sre_c.AT,):
            continue
        return None
    return set()  # empty sequence: matches the empty string, which overlaps with everything


def _can_be_empty(items: list) -> bool:
    for op, arg in items:
        if op in _REPEATS:
            if arg[0] > 0 and not _can_be_empty(list(arg[2])):
                return False
        elif op == sre_c.SUBPATTERN:
            if not _can_be_empty(list(arg[-1])):
                return False
        elif op == sre_c.BRANCH:
            if not any(_can_be_empty(list(alt)) for alt in arg[1]):
                return False
        elif op not in (sre_c.AT,):
            return False
    return True


def _walk(items: list, inside_repeat: bool) -> None:
    for op, arg in items:
        if op in _REPEATS:
            low, high, body = arg
            body = list(body)
            variable = high == sre_c.MAXREPEAT or high - low > 10
            if inside_repeat and variable:
                raise _Unsafe("nested quantifiers")
            if variable and _can_be_empty(body):
                raise _Unsafe("a repeated group that can match nothing")
            _walk(body, inside_repeat or high > 1)
        elif op == sre_c.SUBPATTERN:
            _walk(list(arg[-1]), inside_repeat)
        elif op == sre_c.BRANCH:
            alternatives = [list(alt) for alt in arg[1]]
            if inside_repeat:
                firsts = [_first_chars(alt) for alt in alternatives]
                for i, a in enumerate(firsts):
                    for b in firsts[i + 1 :]:
                        if a is None or b is None or not a or not b or a & b:
                            raise _Unsafe("repeated alternatives that can match the same text")
            for alt in alternatives:
                _walk(alt, inside_repeat)
        elif op in (sre_c.ASSERT, sre_c.ASSERT_NOT):
            _walk(list(arg[1]), inside_repeat)


_DISJOINT_CATEGORIES = {
    frozenset(pair)
    for pair in [
        ("CATEGORY_DIGIT", "CATEGORY_SPACE"),
        ("CATEGORY_WORD", "CATEGORY_SPACE"),
        ("CATEGORY_DIGIT", "CATEGORY_NOT_DIGIT"),
        ("CATEGORY_SPACE", "CATEGORY_NOT_SPACE"),
        ("CATEGORY_WORD", "CATEGORY_NOT_WORD"),
        ("CATEGORY_DIGIT", "CATEGORY_NOT_WORD"),
    ]
}
_CATEGORY_RE = {
    "CATEGORY_DIGIT": re.compile(r"\d"),
    "CATEGORY_NOT_DIGIT": re.compile(r"\D"),
    "CATEGORY_SPACE": re.compile(r"\s"),
    "CATEGORY_NOT_SPACE": re.compile(r"\S"),
    "CATEGORY_WORD": re.compile(r"\w"),
    "CATEGORY_NOT_WORD": re.compile(r"\W"),
}


def _char_class(items: list) -> tuple[frozenset, frozenset, bool]:
    """(literal code points, category names, matches anything) a sequence can start with, roughly."""
    for op, arg in items:
        if op == sre_c.LITERAL:
            return frozenset([arg]), frozenset(), False
        if op == sre_c.IN:
            lits: set[int] = set()
            cats: set[str] = set()
            for sub_op, sub_arg in arg:
                if sub_op == sre_c.LITERAL:
                    lits.add(sub_arg)
                elif sub_op == sre_c.RANGE and sub_arg[1] - sub_arg[0] < 256:
                    lits.update(range(sub_arg[0], sub_arg[1] + 1))
                elif sub_op == sre_c.CATEGORY:
                    cats.add(str(sub_arg))
                else:  # NEGATE, big ranges
                    return frozenset(), frozenset(), True
            return frozenset(lits), frozenset(cats), False
        if op == sre_c.SUBPATTERN:
            return _char_class(list(arg[-1]))
        if op == sre_c.AT:
            continue
        return frozenset(), frozenset(), True
    return frozenset(), frozenset(), True


def _overlap(a: tuple, b: tuple) -> bool:
    (lits_a, cats_a, any_a), (lits_b, cats_b, any_b) = a, b
    if any_a or any_b or lits_a & lits_b:
        return True
    if any(frozenset((x, y)) not in _DISJOINT_CATEGORIES for x in cats_a for y in cats_b):
        return True
    for lits, cats in ((lits_a, cats_b), (lits_b, cats_a)):
        for cat in cats:
            pattern = _CATEGORY_RE.get(cat)
            if pattern is None or any(pattern.match(chr(c)) for c in lits):
                return True
    return False


def _sequence(items: list) -> list:
    """Top-level items with plain groups flattened (``a(b.*c)`` -> ``a b .* c``)."""
    out: list = []
    for op, arg in items:
        if op == sre_c.SUBPATTERN:
            out.extend(_sequence(list(arg[-1])))
        else:
            out.append((op, arg))
    return out


def _overlapping_unbounded(items: list) -> int:
    """The largest number of unbounded repeats in a row of the pattern that can match the same characters
    (``.*.*.*x`` -> 3: cubic backtracking on a long message without x)."""
    classes = [
        _char_class(list(arg[2])) for op, arg in _sequence(items) if op in _REPEATS and arg[1] == sre_c.MAXREPEAT
    ]
    return max((sum(_overlap(c, other) for other in classes) for c in classes), default=0)


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` is refused as a rule (a translated message), or None when it is fine."""
    from django.utils.translation import gettext as _

    if len(pattern) > MAX_REGEX_LENGTH:
        return _("The regular expression is longer than %(n)d characters.") % {"n": MAX_REGEX_LENGTH}
    try:
        re.compile(pattern)
        parsed = sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        return _("Invalid regular expression: %(error)s") % {"error": exc}
    try:
        _walk(list(parsed), inside_repeat=False)
        if _overlapping_unbounded(list(parsed)) > 2:
            raise _Unsafe("three or more unbounded repeats of the same characters")
    except _Unsafe as exc:
        return _(
            "This regular expression could take very long on some messages (%(why)s); simplify it, e.g. "
            "remove nested quantifiers like (a+)+."
        ) % {"why": exc}
    if re.compile(pattern).search(""):
        return _("This regular expression matches every message (it matches the empty text).")
    return None


# -- the index -------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RuleSnapshot:
    id: int
    name: str
    keyword: str
    match_type: str
    reply: str
    priority: int
    words: tuple[str, ...] = ()
    pattern: re.Pattern | None = None
    channels: frozenset[str] = frozenset()
    active_from: dt.datetime | None = None
    active_until: dt.datetime | None = None
    daily_start: dt.time | None = None
    daily_end: dt.time | None = None

    def in_scope(self, channel: str, now: dt.datetime) -> bool:
        if self.channels and channel not in self.channels:
            return False
        if self.active_from and now < self.active_from:
            return False
        if self.active_until and now >= self.active_until:
            return False
        if self.daily_start is not None and self.daily_end is not None:
            from django.utils import timezone

            local = timezone.localtime(now).time()
            if self.daily_start < self.daily_end:
                return self.daily_start <= local < self.daily_end
            return local >= self.daily_start or local < self.daily_end  # wraps midnight
        return True


@dataclasses.dataclass(frozen=True)
class RuleMatch:
    rule: RuleSnapshot | None
    words: tuple[str, ...] = ()
    runners_up: tuple[RuleSnapshot, ...] = ()


class RuleIndex:
    def __init__(self, snapshots: list[RuleSnapshot]) -> None:
        self.rules = sorted(snapshots, key=lambda r: (-r.priority, r.id))
        self.exact: dict[str, list[int]] = {}
        self.need: dict[int, int] = {}
        self.regex_ranks: list[int] = []
        self.automaton: Any = None
        words: dict[str, list[int]] = {}
        for rank, rule in enumerate(self.rules):
            if rule.match_type == "exact":
                for word in rule.words:
                    self.exact.setdefault(word.strip(_EXACT_STRIP) or word, []).append(rank)
            elif rule.match_type == "regex":
                if rule.pattern is not None:
                    self.regex_ranks.append(rank)
            else:
                for word in rule.words:
                    words.setdefault(word, []).append(rank)
                if rule.match_type == "all":
                    self.need[rank] = len(rule.words)
        if words:
            automaton = ahocorasick.Automaton()
            for word, ranks in words.items():
                automaton.add_word(word, (word, tuple(ranks)))
            automaton.make_automaton()
            self.automaton = automaton

    def __len__(self) -> int:
        return len(self.rules)

    def match(
        self, text: str, *, channel: str, now: dt.datetime | None, check_scope: bool = True, runners_up: int = 3
    ) -> RuleMatch:
        """The highest-priority in-scope rule matching normalised ``text`` (plus up to ``runners_up`` others)."""
        if not text or not self.rules:
            return RuleMatch(None)
        hits: dict[int, set[str]] = {}
        key = text.strip(_EXACT_STRIP) or text
        for rank in self.exact.get(key) or ():
            hits.setdefault(rank, set()).add(key)
        if self.automaton is not None:
            for _end, (word, ranks) in self.automaton.iter(text):
                for rank in ranks:
                    hits.setdefault(rank, set()).add(word)
        candidates = sorted(set(hits) | set(self.regex_ranks))
        found: list[tuple[RuleSnapshot, tuple[str, ...]]] = []
        for rank in candidates:
            rule = self.rules[rank]
            words = hits.get(rank, set())
            if rule.match_type == "all" and len(words) < self.need[rank]:
                continue
            if rule.match_type == "regex":
                if rule.pattern is None or rule.pattern.search(text) is None:
                    continue
                words = set()  # what a pattern matched is the customer's text: not reported
            if check_scope and not rule.in_scope(channel, now):  # type: ignore[arg-type]
                continue
            found.append((rule, tuple(sorted(words))))
            if len(found) > runners_up:
                break
        if not found:
            return RuleMatch(None)
        return RuleMatch(found[0][0], found[0][1], tuple(r for r, _ in found[1:]))


def snapshot_of(rule: Any) -> RuleSnapshot | None:
    """A matching snapshot of a KeywordRule row (None for an unusable regex)."""
    pattern = None
    words: tuple[str, ...] = ()
    if rule.match_type == "regex":
        if regex_problem(rule.keyword):
            return None
        pattern = re.compile(rule.keyword, re.IGNORECASE)
    else:
        words = tuple(split_words(rule.keyword))
        if not words:
            return None
    return RuleSnapshot(
        id=rule.id,
        name=rule.name,
        keyword=rule.keyword,
        match_type=rule.match_type,
        reply=rule.reply,
        priority=rule.priority,
        words=words,
        pattern=pattern,
        channels=frozenset(rule.channel_list),
        active_from=rule.active_from,
        active_until=rule.active_until,
        daily_start=rule.daily_start,
        daily_end=rule.daily_end,
    )


def _load() -> RuleIndex:
    from knowledge.models import KeywordRule

    snapshots = [snapshot_of(rule) for rule in KeywordRule.objects.filter(enabled=True)]
    return RuleIndex([s for s in snapshots if s is not None])


class RuleCache:
    """The per-worker rule index, rebuilt when ``kefu:ver:keyword_rules`` moves."""

    def __init__(self) -> None:
        self._cache = versions.cached("keyword_rules", _load)

    def index(self, version: str | None = None) -> RuleIndex:
        return self._cache.get(version)

    def rules(self) -> list[RuleSnapshot]:
        return self.index().rules

    def peek(self) -> RuleIndex | None:
        return self._cache.peek()

    @property
    def version(self) -> str | None:
        return self._cache.version

    def reset(self) -> None:
        versions.reset_all()


def current_version() -> str:
    return versions.current("keyword_rules")


def bump_version() -> None:
    versions.bump("keyword_rules")


cache = RuleCache()
