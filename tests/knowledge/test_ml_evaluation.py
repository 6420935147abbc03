"""Evaluation helpers: JSONL loading and ranking/latency metrics."""

from __future__ import annotations

import pytest

from knowledge.ml.evaluation import (
    DataFileError,
    hit_at_k,
    latency_summary,
    load_jsonl,
    mean_reciprocal_rank,
    percentile,
    reciprocal_rank,
)


def test_load_jsonl_reads_objects_and_skips_blank_lines(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "你好", "label": "问候"}\n\n{"text": "谢谢", "label": "致谢告别"}\n', encoding="utf-8")
    rows = load_jsonl(path, required=("text", "label"))
    assert [r["label"] for r in rows] == ["问候", "致谢告别"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"text": "a", "label": "x"}\n{"text": "b"\n', ":2: invalid JSON"),
        ('["a", "b"]\n', ":1: expected a JSON object"),
        ('{"text": "a"}\n', "missing or empty key 'label'"),
        ('{"text": "  ", "label": "x"}\n', "missing or empty key 'text'"),
    ],
)
def test_load_jsonl_errors_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataFileError, match=message):
        load_jsonl(path, required=("text", "label"))


def test_load_jsonl_missing_file(tmp_path):
    with pytest.raises(DataFileError, match="file not found"):
        load_jsonl(tmp_path / "nope.jsonl")


def test_ranking_metrics():
    ranked = [["a", "b", "c"], ["b", "a"], ["c", "b", "a"], []]
    gold = ["a", "a", "a", "a"]
    assert hit_at_k(ranked, gold, 1) == 0.25
    assert hit_at_k(ranked, gold, 2) == 0.5
    assert hit_at_k(ranked, gold, 3) == 0.75
    assert reciprocal_rank(["x", "y", "a"], "a") == pytest.approx(1 / 3)
    assert mean_reciprocal_rank(ranked, gold) == pytest.approx((1 + 1 / 2 + 1 / 3 + 0) / 4)
    with pytest.raises(ValueError):
        hit_at_k(ranked, gold[:2], 1)


def test_percentiles():
    samples = [float(i) for i in range(1, 101)]
    assert percentile(samples, 50) == pytest.approx(50.5)
    assert percentile(samples, 99) == pytest.approx(99.01)
    assert percentile([], 50) == 0.0
    assert latency_summary([2.0, 4.0]) == {"p50_ms": 3.0, "p90_ms": 3.8, "p99_ms": 3.98}
