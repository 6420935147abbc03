"""core.textfilter: normalisation, matching, masking and actions. Pure: no database, no Django."""

from __future__ import annotations

import json
from itertools import combinations_with_replacement
from pathlib import Path

import pytest

from core.textfilter import (
    MASK_CHAR,
    Action,
    Hit,
    Matcher,
    Word,
    normalize,
    normalize_with_map,
    scan_all,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "textfilter"


def load_words() -> list[Word]:
    words = []
    for line in (FIXTURES / "words.tsv").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            text, category, action = line.split("\t")
            words.append(Word(text, category, Action(action)))
    return words


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher.build(load_words())


def spans(result) -> list[tuple[str, int, int]]:
    return [(h.word, h.start, h.end) for h in result.hits]


# ------------------------------------------------------------------------------------------------
# Normalisation
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ＶＸ", "vx"),  # full width
        ("ＱＱ１２３", "qq123"),
        ("Ⓥⓧ", "vx"),  # circled letters (NFKC)
        ("VX", "vx"),  # case
        ("Vx", "vx"),
        ("微信號", "微信号"),  # traditional
        ("聯繫客服", "联系客服"),
        ("發貨", "发货"),
        ("微*信", "微信"),  # separators
        ("微 信", "微信"),
        ("微　信", "微信"),  # ideographic space
        ("微\n\t信", "微信"),
        ("微😀信", "微信"),  # emoji
        ("微👨\u200d👩\u200d👧信", "微信"),  # ZWJ sequence
        ("微❤️信", "微信"),  # variation selector
        ("微\u200b信", "微信"),  # zero-width space
        ("微丶信", "微信"),
        ("微、信。", "微信"),
        ("V 信", "v信"),
        ("加 v x", "加vx"),
        ("w̷x̷", "wx"),  # combining overlays ("Zalgo")
        ("wēi xìn", "weixin"),  # Latin diacritics folded
        ("微1信", "微1信"),  # letters and digits are not separators
        ("", ""),
        ("   ", ""),
        ("😀🎁👍", ""),
    ],
)
def test_normalize(raw, expected):
    assert normalize(raw) == expected


def test_normalize_with_map_points_back_to_original_characters():
    text = "ＶＸ：微 😀 信㎏"
    norm, index = normalize_with_map(text)
    assert norm == "vx微信kg"
    assert index == [0, 1, 3, 7, 8, 8]  # "㎏" expands to two characters of the same origin
    assert [text[i] for i in index] == ["Ｖ", "Ｘ", "微", "信", "㎏", "㎏"]


def test_normalize_with_map_is_consistent_with_normalize_on_long_mixed_text():
    text = ("加我 Ｖ信😀，發貨了嗎？abc\u200b" * 300)[:5000]
    norm, index = normalize_with_map(text)
    assert norm == normalize(text)
    assert len(index) == len(norm)
    assert index == sorted(index)
    assert all(normalize(text[i]) for i in index)


# ------------------------------------------------------------------------------------------------
# Matching through disguises
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "word", "span"),
    [
        ("加我微*信吧", "微信", (2, 5)),
        ("加我微 信吧", "微信", (2, 5)),
        ("加我微😀信吧", "微信", (2, 5)),
        ("加我微😀😀 - 信吧", "微信", (2, 9)),
        ("加我微信吧", "微信", (2, 4)),
        ("加我微\u200b信吧", "微信", (2, 5)),
        ("ＶＸ：abc", "vx", (0, 2)),
        ("VX号abc", "vx", (0, 2)),
        ("有事加 v x 聊", "vx", (4, 7)),
        ("有事加 V 信", "V信", (4, 7)),  # reported as listed
    ],
)
def test_disguised_words_are_found(text, word, span):
    m = Matcher.build(
        [Word("微信", "contact", Action.MASK), Word("vx", "contact", "mask"), Word("V信", "contact", "mask")]
    )
    result = m.scan(text)
    assert (word, *span) in spans(result)


@pytest.mark.parametrize("text", ["薇信", "威信", "微x信", "微1信", "微"])
def test_letters_and_digits_inside_a_word_are_not_separators(text):
    m = Matcher.build([Word("微信", "contact", Action.MASK)])
    assert m.scan(text).hits == []


def test_traditional_text_matches_simplified_word_and_vice_versa():
    simplified = Matcher.build([Word("联系方式", "contact", Action.FLAG)])
    traditional = Matcher.build([Word("聯繫方式", "contact", Action.FLAG)])
    for m in (simplified, traditional):
        assert spans(m.scan("我的聯繫方式在這")) == [(m.words[0].text, 2, 6)]
        assert spans(m.scan("我的联系方式在这")) == [(m.words[0].text, 2, 6)]


def test_fixture_cases(matcher):
    cases = [json.loads(line) for line in (FIXTURES / "cases.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(cases) >= 10
    for case in cases:
        result = matcher.scan(case["text"])
        assert (case["text"], result.action.value, result.masked_text) == (
            case["text"],
            case["action"],
            case["masked"],
        )


# ------------------------------------------------------------------------------------------------
# Masking
# ------------------------------------------------------------------------------------------------


def test_masking_keeps_the_original_text_around_hits():
    m = Matcher.build([Word("微信", "contact", Action.MASK)])
    text = "親，加我 微 * 信：Ｗ123 😀 謝謝"
    result = m.scan(text)
    assert spans(result) == [("微信", 5, 10)]
    # Only the hit span (separators inside it included) becomes ＊; the rest is untouched, traditional
    # characters, full width letters, emoji and the spaces just outside the hit included.
    assert result.masked_text == "親，加我 " + MASK_CHAR * 5 + "：Ｗ123 😀 謝謝"
    assert len(result.masked_text) == len(text)


def test_masking_a_hit_made_of_astral_and_expanded_characters():
    m = Matcher.build([Word("kg", "unit", Action.MASK)])
    result = m.scan("5㎏ please")
    assert spans(result) == [("kg", 1, 2)]
    assert result.masked_text == "5＊ please"


def test_block_hits_are_masked_flag_and_handoff_hits_are_not():
    m = Matcher.build(
        [
            Word("傻逼", "abuse", Action.BLOCK),
            Word("微信", "contact", Action.MASK),
            Word("退款", "refund", Action.FLAG),
            Word("投诉", "complaint", Action.HANDOFF),
        ]
    )
    result = m.scan("傻逼，退款，投诉，微信")
    assert result.masked_text == "＊＊，退款，投诉，＊＊"
    assert result.blocked


def test_overlapping_and_nested_hits_are_all_reported_and_masked_as_a_union():
    m = Matcher.build(
        [Word("加微信", "contact", Action.FLAG), Word("微信号", "contact", Action.MASK), Word("微信", "c", "mask")]
    )
    result = m.scan("请加微信号码")
    assert spans(result) == [("加微信", 1, 4), ("微信", 2, 4), ("微信号", 2, 5)]
    assert result.masked_text == "请加＊＊＊码"
    assert result.action is Action.MASK


# ------------------------------------------------------------------------------------------------
# Actions
# ------------------------------------------------------------------------------------------------

ORDER = [Action.FLAG, Action.MASK, Action.HANDOFF, Action.BLOCK]


@pytest.mark.parametrize(("weaker", "stronger"), list(combinations_with_replacement(ORDER, 2)))
def test_strongest_action_wins(weaker, stronger):
    words = [Word("苹果", "a", weaker), Word("香蕉", "b", stronger)]
    for text in ("苹果和香蕉", "香蕉和苹果"):
        result = Matcher.build(words).scan(text)
        assert result.action is stronger
        assert result.blocked is (stronger is Action.BLOCK)


def test_action_order():
    assert sorted(Action, key=lambda a: a.rank) == [Action.NONE, *ORDER]


def test_no_hit_means_action_none():
    result = Matcher.build([Word("苹果", "a", Action.BLOCK)]).scan("香蕉")
    assert (result.hits, result.action, result.blocked, result.masked_text) == ([], Action.NONE, False, "香蕉")


def test_hit_carries_word_category_and_action_as_listed():
    result = Matcher.build([Word("微信", "contact", "mask")]).scan("微信")
    assert result.hits == [Hit("微信", "contact", Action.MASK, 0, 2, False)]


def test_scan_all_merges_lists():
    contact = Matcher.build([Word("微信", "contact", Action.MASK)], pinyin_initials=False)
    abuse = Matcher.build([Word("傻逼", "abuse", Action.BLOCK)])
    result = scan_all([contact, abuse], "傻逼加微信")
    assert spans(result) == [("傻逼", 0, 2), ("微信", 3, 5)]
    assert (result.action, result.masked_text) == (Action.BLOCK, "＊＊加＊＊")


# ------------------------------------------------------------------------------------------------
# False positives and their documented limits
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "asbestos",
        "it is bad",
        "Mrs. B said",
        "devxml",
        "I love XML",
        "qqq",
        "call 21105",
    ],
)
def test_short_latin_word_inside_a_longer_run_is_not_a_hit(text):
    m = Matcher.build(
        [Word("sb", "abuse", Action.BLOCK), Word("vx", "c", "mask"), Word("qq", "c", "mask"), Word("110", "c", "flag")]
    )
    assert m.scan(text).hits == []


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("qq123456", "qq"),  # digits do not extend a letter word
        ("加vx聊", "vx"),  # CJK neighbours are boundaries
        ("s b", "sb"),  # separated letters still match (the "加 v x" rule)
        ("(sb)", "sb"),
        ("报警110!", "110"),
    ],
)
def test_latin_word_at_a_boundary_is_a_hit(text, word):
    m = Matcher.build(
        [Word("sb", "abuse", Action.BLOCK), Word("vx", "c", "mask"), Word("qq", "c", "mask"), Word("110", "c", "flag")]
    )
    assert [h.word for h in m.scan(text).hits] == [word]


def test_cjk_word_inside_a_longer_run_matches_unless_allowed():
    words = [Word("微信", "contact", Action.MASK)]
    # Documented limit: CJK has no word boundaries.
    assert spans(Matcher.build(words).scan("稍微信任我")) == [("微信", 1, 3)]
    allowed = Matcher.build(words, allow=["稍微信任"])
    assert allowed.scan("稍微信任我").hits == []
    assert spans(allowed.scan("稍微信任我，加微信")) == [("微信", 7, 9)]


# ------------------------------------------------------------------------------------------------
# Pinyin initials
# ------------------------------------------------------------------------------------------------


def test_pinyin_initials_are_off_by_default():
    m = Matcher.build([Word("微信", "contact", Action.MASK)])
    assert m.scan("加我wx").hits == []


def test_pinyin_initials_when_enabled():
    import pypinyin  # noqa: F401  (a pinned requirement; fail loudly when missing)

    m = Matcher.build(
        [Word("微信", "contact", Action.MASK), Word("加v信", "contact", Action.FLAG)], pinyin_initials=True
    )
    result = m.scan("加我 W X 吧")
    assert result.hits == [Hit("微信", "contact", Action.MASK, 3, 6, True)]
    assert result.masked_text == "加我 ＊＊＊ 吧"
    assert [h.word for h in m.scan("jvx").hits] == ["加v信"]
    assert m.scan("wxyz").hits == []  # the Latin edge rule applies to initials too
    assert [h.via_pinyin for h in m.scan("微信").hits] == [False]


# ------------------------------------------------------------------------------------------------
# Building
# ------------------------------------------------------------------------------------------------


def test_build_dedupes_and_ignores_empty_words():
    m = Matcher.build(load_words())
    texts = [w.text for w in m.words]
    assert texts.count("微信") == 1
    assert "ＶＸ" not in texts  # same as "vx" once normalised
    assert "***" not in texts  # nothing left once normalised
    assert Matcher.build([Word("", "x", "block"), Word("  ", "x", "block")]).scan("  ").hits == []


def test_same_word_in_two_categories_reports_both():
    m = Matcher.build([Word("微信", "contact", Action.MASK), Word("微信", "competitor", Action.FLAG)])
    assert sorted(h.category for h in m.scan("微信").hits) == ["competitor", "contact"]


def test_word_rejects_unknown_action():
    with pytest.raises(ValueError):
        Word("微信", "contact", "delete")
    with pytest.raises(ValueError):
        Word("微信", "contact", Action.NONE)


def test_empty_word_list_matches_nothing():
    assert Matcher.build([]).scan("微信 傻逼").action is Action.NONE


# ------------------------------------------------------------------------------------------------
# Robustness
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", " ", "\n\t  \u3000", "😀", "😀👍🏽🇨🇳", "\u200b\ufeff", "\ud800", "\x00\x01", None, "微" * 5000, "x" * 5000],
)
def test_never_raises(matcher, text):
    result = matcher.scan(text)
    assert result.masked_text == (text or "")
    assert result.action is Action.NONE


def test_long_input_hit_near_the_end_maps_to_the_right_span(matcher):
    text = "好" * 4990 + "微 😀 信" + "好" * 5
    result = matcher.scan(text)
    assert spans(result) == [("微信", 4990, 4995)]
    assert result.masked_text == "好" * 4990 + MASK_CHAR * 5 + "好" * 5


def test_a_large_list_finds_exactly_its_words_in_a_long_text():
    # Throughput is measured by `manage.py bench_textfilter`, not asserted here.
    words = [Word(f"敏感词{i}号", "c", Action.FLAG) for i in range(2000)]
    m = Matcher.build(words)
    text = ("你好，请问这个什么时候发货？加我微 信😀 敏感词17号 " * 8)[:200]
    result = m.scan(text)
    assert result.hits and {h.word for h in result.hits} == {"敏感词17号"}
    assert result.action is Action.FLAG
