"""Normalisation and tokenisation: pure Python, no database."""

from __future__ import annotations

import logging
import pickle

import pytest

from knowledge.ml.normalize import MAX_LENGTH, normalize
from knowledge.ml.tokenize import Tokenizer, default_tokenizer, tokenize


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ＡＢＣ１２３　ｉＰｈｏｎｅ！", "abc123 iphone!"),
        ("請問退貨運費誰負擔？", "请问退货运费谁负担?"),
        ("iPhone 15 Pro Max 發貨了嗎", "iphone 15 pro max 发货了吗"),
        ("  你好 \n\t  在吗  ", "你好 在吗"),
        ("退\u200b款", "退款"),
        ("HELLO 客服", "hello 客服"),
    ],
)
def test_normalize_cases(raw, expected):
    assert normalize(raw) == expected


@pytest.mark.parametrize("raw", ["", " ", "\n\t \u3000", "\u200b", "\x00\x01"])
def test_empty_and_blank_become_empty(raw):
    assert normalize(raw) == ""


def test_emoji_only_is_kept():
    assert normalize("😊👍") == "😊👍"
    family = "👨\u200d👩\u200d👧"  # zero-width joiners belong to the emoji sequence
    assert normalize(f" {family} ") == family


def test_never_raises_on_odd_input():
    for raw in ["\ud800半个代理对", "a\u0301\u0301", "𠀀𪚥", "🇨🇳" * 3, "\uffff\ufffe", "x\r\ny"]:
        assert isinstance(normalize(raw), str)
    assert normalize(None) == ""  # type: ignore[arg-type]


def test_long_message_is_truncated():
    raw = "請問這個商品什麼時候發貨？😊 " * 400  # ~6,000 characters
    out = normalize(raw)
    assert 0 < len(out) <= MAX_LENGTH
    assert out.startswith("请问这个商品什么时候发货?")


def test_idempotent():
    for raw in ["ＡＢＣ 請問", "退貨  運費", "😊 Hi", "x" * 3000]:
        once = normalize(raw)
        assert normalize(once) == once


def test_tokenize_normalises_and_drops_punctuation():
    tokens = tokenize("請問，運費險可以退嗎？")
    assert "运费险" in tokens  # domain dictionary word, after traditional -> simplified
    assert "," not in tokens and "?" not in tokens and " " not in tokens
    assert tokenize("") == []
    assert tokenize("？？？") == []


def test_custom_words_are_private_and_picklable():
    tok = Tokenizer()
    before = tok.cut("小米手环八代有货吗")
    tok.add_words(["小米手环八代", " ", ""])
    assert tok.words == ["小米手环八代"]
    assert tok.cut("小米手环八代有货吗")[0] == "小米手环八代"
    assert "小米手环八代" not in before
    # The shared default tokenizer is untouched.
    assert "小米手环八代" not in default_tokenizer().cut("小米手环八代有货吗")
    clone = pickle.loads(pickle.dumps(tok))
    assert clone.words == ["小米手环八代"]
    assert clone.cut("小米手环八代有货吗") == tok.cut("小米手环八代有货吗")


def test_tokenizer_is_usable_as_sklearn_tokenizer():
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(tokenizer=Tokenizer(), token_pattern=None, lowercase=False)
    X = vec.fit_transform(["快递到哪了", "发票怎么开"])
    assert X.shape[0] == 2
    assert {"快递", "发票", "怎么"} <= set(vec.vocabulary_)


def test_jieba_is_quiet(caplog):
    with caplog.at_level(logging.DEBUG, logger="jieba"):
        Tokenizer(["静音测试词"]).cut("静音测试词")
    assert not [r for r in caplog.records if r.name == "jieba" and r.levelno < logging.WARNING]
