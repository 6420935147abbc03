"""core.chinese: the one traditional → simplified converter of knowledge, routing and the text filters."""

import sys
import threading

from core import chinese
from core.textfilter import Matcher, Word
from knowledge.ml.normalize import normalize as knowledge_normalize
from routing.detect import normalize as routing_normalize


def test_traditional_text_is_simplified_everywhere_it_is_normalised():
    assert chinese.to_simplified("這個東西怎麼退貨") == "这个东西怎么退货"
    assert knowledge_normalize("這個東西怎麼退貨") == "这个东西怎么退货"
    assert routing_normalize("轉人工！") == "转人工!"
    result = Matcher.build([Word("退货", "test", "block")]).scan("我要退貨")
    assert result.blocked and [hit.word for hit in result.hits] == ["退货"]


def test_threads_share_one_converter():
    results, texts = [], ["東西", "退貨", "怎麼", "轉人工"] * 25

    def convert(text):
        results.append(chinese.to_simplified(text))

    threads = [threading.Thread(target=convert, args=(t,)) for t in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == sorted(["东西", "退货", "怎么", "转人工"] * 25)


def test_without_opencc_the_text_passes_unchanged(monkeypatch):
    monkeypatch.setattr(chinese, "_converter", None)
    monkeypatch.setattr(chinese, "_failed", False)
    monkeypatch.setitem(sys.modules, "opencc", None)  # import opencc raises ImportError
    assert chinese.to_simplified("退貨") == "退貨"
    assert chinese._failed
