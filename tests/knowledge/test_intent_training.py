"""Intent models: imports (JSONL / CSV / Rasa), training as a Celery task on the ml queue (a real worker),
metrics, activation and roll-back switching what decide uses, clarify between two intents, clear errors."""

from __future__ import annotations

import json

import pytest
from django.db import transaction

from core.errors import ApplicationError
from knowledge import services
from knowledge.decision import DecisionContext
from knowledge.models import Intent, IntentExample, IntentModel, Synonym
from knowledge.services import intents as intent_service
from tests.conftest import running_worker, wait_for

GREETINGS = [
    "你好",
    "您好",
    "在吗",
    "哈喽",
    "有人吗",
    "早上好",
    "晚上好",
    "客服你好",
    "hello",
    "hi在吗",
    "亲在吗",
    "你好呀",
]
INVOICE = [
    "开发票",
    "怎么开发票",
    "能开专票吗",
    "发票抬头怎么填",
    "我要发票",
    "电子发票在哪",
    "发票开错了",
    "补开发票",
    "开普通发票",
    "公司报销要发票",
    "发票税号",
    "发票什么时候开",
]
TRACKING = [
    "查物流",
    "快递到哪了",
    "包裹到哪里了",
    "我的货到哪儿了",
    "帮我查快递",
    "物流怎么查",
    "看下物流",
    "查询快递",
    "快递单号多少",
    "物流信息",
    "我的订单到哪了",
    "帮我查一下物流",
]
WARRANTY = [
    "保修多久",
    "有保修吗",
    "质保多长时间",
    "坏了能修吗",
    "保修期",
    "全国联保吗",
    "维修要多久",
    "电池保修吗",
    "屏幕坏了保修吗",
    "过了保修怎么办",
    "保修要发票吗",
    "怎么申请维修",
]


def make_intents(include_warranty=False):
    spec = [
        ("问候", "打招呼", "您好！", "", GREETINGS),
        ("开发票", "开发票", "订单页申请开票。", "", INVOICE),
        ("查物流", "查物流", "", "logistics", TRACKING),
    ]
    if include_warranty:
        spec.append(("保修", "保修", "整机保修一年。", "", WARRANTY))
    for name, description, answer, form, examples in spec:
        intent = Intent.objects.create(name=name, description=description, answer=answer, form=form)
        IntentExample.objects.bulk_create([IntentExample(intent=intent, text=t) for t in examples])


def decide(text, conversation=None):
    services.caches_reset()
    return services.decide(text=text, context=DecisionContext(conversation_id=conversation, channel_slug="web"))


@pytest.mark.django_db(transaction=True)
def test_training_runs_as_a_celery_task_and_stores_a_version_with_metrics(redis_clean):
    make_intents()
    with running_worker(queues=("ml",)):
        with transaction.atomic():
            model = services.intent_model_train_start()
        assert model.status == IntentModel.Status.QUEUED
        model = wait_for(
            lambda: IntentModel.objects.filter(pk=model.pk, status__in=["ready", "failed"]).first(), timeout=60
        )
    assert model.status == IntentModel.Status.READY, model.error
    assert model.progress == 100
    assert model.active  # the first version goes live by itself
    metrics = model.metrics
    for key in ("accuracy", "macro_f1", "per_label", "confusion", "misclassified", "n_test", "train_seconds"):
        assert key in metrics
    assert set(metrics["per_label"]) == {"问候", "开发票", "查物流"}
    assert {"precision", "recall"} <= set(metrics["per_label"]["开发票"])
    assert len(metrics["confusion"]["matrix"]) == 3
    assert metrics["evaluation"].startswith("holdout")
    assert model.labels == sorted(["问候", "开发票", "查物流"])
    assert bytes(model.blob).startswith(b"KEFU-INTENT")
    decision = decide("我想开个发票")
    assert decision.trace["stage"] == "intent" and decision.trace["intent"] == "开发票"
    assert decision.trace["model_version"] == model.version


@pytest.mark.django_db
def test_activate_and_roll_back_switch_what_decide_uses(redis_clean, django_capture_on_commit_callbacks):
    make_intents()
    with django_capture_on_commit_callbacks(execute=True):
        v1 = services.intent_model_train_run(model_id=services.intent_model_train_start(queue=False).id)
    assert v1.active
    intent = Intent.objects.create(name="保修", answer="整机保修一年。")
    IntentExample.objects.bulk_create([IntentExample(intent=intent, text=t) for t in WARRANTY])
    with django_capture_on_commit_callbacks(execute=True):
        v2 = services.intent_model_train_run(model_id=services.intent_model_train_start(queue=False).id)
    assert v2.status == "ready" and not v2.active  # a new version waits for the operator
    assert decide("质保期多长时间").trace["model_version"] == v1.version

    with django_capture_on_commit_callbacks(execute=True):
        services.intent_model_activate(model=v2)
    decision = decide("质保期多长时间")
    assert decision.trace["model_version"] == v2.version
    assert decision.trace["intent"] == "保修"
    assert decision.reply == "整机保修一年。"

    with django_capture_on_commit_callbacks(execute=True):
        back = services.intent_model_rollback()
    assert back.pk == v1.pk
    assert IntentModel.objects.get(active=True).pk == v1.pk
    assert decide("质保期多长时间").trace["model_version"] == v1.version
    with pytest.raises(ApplicationError):
        services.intent_model_rollback()  # nothing older than v1


@pytest.mark.django_db
def test_clarify_between_two_intents_and_pick_by_number(redis_clean, django_capture_on_commit_callbacks):
    make_intents()
    shared = [
        "退钱",
        "要退",
        "不想要了",
        "退掉",
        "我要退",
        "退了吧",
        "申请退",
        "能退吗",
        "想退",
        "退一下",
        "给我退",
        "退",
    ]
    refund = Intent.objects.create(name="退款", description="退款到账", answer="退款原路返回，1-7 个工作日到账。")
    returns = Intent.objects.create(name="退货", description="退货寄回", answer="在订单页申请退货后寄回。")
    for intent in (refund, returns):
        IntentExample.objects.bulk_create([IntentExample(intent=intent, text=t) for t in shared])
    with django_capture_on_commit_callbacks(execute=True):
        services.intent_model_train_run(model_id=services.intent_model_train_start(queue=False).id)
    clarify = decide("我要退", conversation=31)
    assert clarify.kind == "clarify", clarify.trace
    assert clarify.trace["stage"] == "intent_clarify"
    assert set(clarify.suggestions) == {"退款到账", "退货寄回"}
    assert "1." in clarify.reply and "2." in clarify.reply
    picked = decide("2", conversation=31)
    second = clarify.suggestions[1]
    assert picked.kind == "answer"
    assert picked.trace["intent"] == ("退款" if second == "退款到账" else "退货")


@pytest.mark.django_db
def test_intent_with_a_form_starts_it(redis_clean, django_capture_on_commit_callbacks):
    make_intents()
    with django_capture_on_commit_callbacks(execute=True):
        services.intent_model_train_run(model_id=services.intent_model_train_start(queue=False).id)
    asked = decide("帮我查下快递到哪了", conversation=41)
    assert asked.kind == "form_step" and asked.trace["form"] == "logistics"


@pytest.mark.django_db
def test_empty_training_set_or_one_intent_is_refused_with_a_clear_message():
    with pytest.raises(ApplicationError) as exc:
        services.intent_model_train_start()
    assert exc.value.code == "no_training_data"
    assert "example" in exc.value.message or "示例" in exc.value.message
    intent = Intent.objects.create(name="问候")
    IntentExample.objects.create(intent=intent, text="你好")
    with pytest.raises(ApplicationError) as exc:
        services.intent_model_train_start()
    assert "问候" in exc.value.message
    assert not IntentModel.objects.exists()


@pytest.mark.django_db
def test_a_failed_training_is_recorded_on_the_version():
    make_intents()
    model = services.intent_model_train_start(queue=False)
    IntentExample.objects.all().delete()  # the data vanished before the worker ran
    model = services.intent_model_train_run(model_id=model.id)
    assert model.status == "failed"
    assert model.error
    assert not model.active
    assert services.intent_model_train_run(model_id=model.id).status == "failed"  # idempotent


def test_import_jsonl_csv_and_rasa(db, django_capture_on_commit_callbacks):
    jsonl = '{"text": "你好", "label": "问候"}\n\n{"text": "发票怎么开", "label": "开发票"}\n'
    report = services.intent_examples_import(content=jsonl.encode(), filename="train.jsonl")
    assert report.as_dict() == {"intents_created": 2, "examples_created": 2, "examples_skipped": 0, "synonyms": 0}

    csv_text = 'text,label\n你好,问候\n"能开专票吗，急",开发票\n快递到哪了,查物流\n'
    report = services.intent_examples_import(content=csv_text.encode("utf-8-sig"), filename="train.csv")
    assert (report.intents_created, report.examples_created, report.examples_skipped) == (1, 2, 1)

    rasa = """
version: "3.1"
nlu:
- intent: 价格
  examples: |
    - [X1](product)多少钱
    - [小米14]{"entity": "product"}什么价
- synonym: 充电器
  examples: |
    - 充电头
    - 火牛
- regex: order
  examples: |
    - \\d{13}
"""
    with django_capture_on_commit_callbacks(execute=True):
        report = services.intent_examples_import(content=rasa, filename="nlu.yml")
    assert (report.intents_created, report.examples_created, report.synonyms) == (1, 2, 1)
    assert set(IntentExample.objects.filter(intent__name="价格").values_list("text", flat=True)) == {
        "X1多少钱",
        "小米14什么价",
    }
    assert Synonym.objects.get(word="充电器").synonym_list == ["充电头", "火牛"]


@pytest.mark.parametrize(
    ("content", "filename", "needle"),
    [
        ('{"text": "你好"}\n', "a.jsonl", "2"[:0] + "1"),
        ("{not json\n", "a.jsonl", "1"),
        ("text,label\n只有一列\n", "a.csv", "2"),
        ("nlu: [[[", "a.yml", "YAML"),
        ("", "a.csv", ""),
    ],
)
def test_import_errors_name_the_line(db, content, filename, needle):
    with pytest.raises(ApplicationError) as exc:
        services.intent_examples_import(content=content, filename=filename)
    assert needle in exc.value.message
    assert not IntentExample.objects.exists()


def test_split_keeps_every_intent_in_training():
    texts = [f"t{i}" for i in range(25)]
    labels = ["a"] * 20 + ["b"] * 3 + ["c"] * 2
    train, test = intent_service._split(texts, labels)
    assert sorted(train + test) == list(range(25))
    assert {labels[i] for i in train} == {"a", "b", "c"}
    assert [labels[i] for i in test].count("a") == 4


@pytest.mark.django_db
def test_train_intents_command_imports_trains_and_activates(tmp_path, redis_clean, capsys):
    from django.core.management import call_command

    path = tmp_path / "train.jsonl"
    rows = [{"text": t, "label": "问候"} for t in GREETINGS] + [{"text": t, "label": "开发票"} for t in INVOICE]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    call_command("train_intents", "--import", str(path), "--activate")
    out = capsys.readouterr().out
    assert "ready and active" in out
    assert IntentModel.objects.get(active=True).labels == ["开发票", "问候"]
