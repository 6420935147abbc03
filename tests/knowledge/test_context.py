"""Multi-turn context in Redis: entities, product follow-ups, the order-tracking form (with cancel), expiry."""

from __future__ import annotations

import pytest

from knowledge import context as ctx
from knowledge import forms_dialog, services
from knowledge.decision import DecisionContext
from knowledge.demo import seed_catalog
from knowledge.models import Intent, IntentModel

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(redis_clean):
    seed_catalog()
    services.caches_reset()
    yield
    services.caches_reset()


def say(text, conversation=7):
    return services.decide(text=text, context=DecisionContext(conversation_id=conversation, channel_slug="web"))


def test_entities_products_orders_phones_amounts(shop):
    catalog = ctx.catalog_cache.get()
    entities = ctx.extract_entities("x1 pro 和 buds2 各一个，订单2026112501001，手机13800138000，付了¥4398.5", catalog)
    names = [catalog.products[p].name for p in entities.products]
    assert names == ["优选 X1 Pro 手机", "声悦 Buds 2 无线耳机"]  # longest name wins over "x1"
    assert entities.order_numbers == ("2026112501001",)
    assert entities.phones == ("13800138000",)
    assert entities.amounts == ("4398.5",)
    assert ctx.extract_entities("", catalog) == ctx.Entities()


def test_follow_up_resolves_to_the_product_of_the_previous_turn(shop, redis_clean):
    first = say("优选X1手机多少钱?")
    assert first.trace["stage"] == "product"
    assert "2999" in first.reply
    follow = say("有黑色的吗?")
    assert follow.trace["stage"] == "product"
    assert follow.trace["from_context"] is True
    assert follow.trace["product"] == "优选 X1 手机"
    assert "曜石黑" in follow.reply
    absent = say("有粉色的吗")
    assert "优选 X1 手机" in absent.reply and "冰川白" in absent.reply  # says which colours exist
    switched = say("A5 有货吗")
    assert switched.trace["product"] == "优选 A5 手机"
    assert switched.trace["asks"] == ["stock"]
    state = ctx.DialogueState.from_json(redis_clean.get(ctx.context_key(7)))
    assert state.last_product == switched.trace["product_id"]
    assert redis_clean.ttl(ctx.context_key(7)) > 0


def test_a_product_named_in_a_complaint_is_not_a_product_question(shop):
    assert say("我买的黑色X1屏幕坏了怎么办").trace["stage"] != "product"
    assert say("X1 手机多少钱").trace["stage"] == "product"  # ... but it is remembered
    assert say("我的X1黑色的", conversation=8).trace["stage"] == "product"  # short: what colour we have


def test_another_conversation_has_its_own_context(shop):
    say("优选X1手机多少钱", conversation=1)
    assert say("有黑色的吗", conversation=2).trace["stage"] != "product"


def test_context_expires_after_the_configured_ttl(shop, settings, redis_clean):
    settings.KEFU_CONTEXT_TTL_SECONDS = 5
    say("X1 多少钱", conversation=9)
    assert 0 < redis_clean.ttl(ctx.context_key(9)) <= 5
    redis_clean.delete(ctx.context_key(9))  # what expiry does
    assert say("有黑色的吗", conversation=9).trace["stage"] != "product"


@pytest.fixture
def logistics(shop):
    """查物流 as an intent that opens the logistics form, reached through a keyword-free model-less path:
    we open the form directly from a stored context, as the intent stage would."""
    Intent.objects.create(name="查物流", form="logistics")
    assert not IntentModel.objects.exists()

    def open_form(conversation=7):
        state = ctx.DialogueState()
        result = forms_dialog.FORMS["logistics"].start(state, ctx.Entities())
        ctx.state_save(conversation, state)
        return result

    return open_form


def test_logistics_form_asks_validates_and_answers_from_the_order_table(logistics):
    asked = logistics()
    assert asked.status == "asked"
    wrong = say("12345")
    assert wrong.kind == "form_step" and "12345" in wrong.reply
    missing = say("9999999999999")
    assert missing.kind == "form_step" and "9999999999999" in missing.reply
    found = say("单号是 2026112501001 帮我看看")
    assert found.kind == "answer"
    assert found.trace["stage"] == "form" and found.trace["form_status"] == "done"
    assert "SF1488203398211" in found.reply and "顺丰" in found.reply
    assert say("12345").trace["stage"] != "form"  # the form is closed


def test_logistics_form_can_be_cancelled(logistics):
    logistics()
    for word in ("算了", "换个问题"):
        logistics()
        cancelled = say(word)
        assert cancelled.trace["form_status"] == "cancelled"
        assert ctx.state_load(7).form is None


def test_logistics_form_gives_up_after_three_failures(logistics):
    logistics()
    say("1234567")
    say("7654321")
    last = say("1111111")
    assert last.trace["form_status"] == "gave_up"
    assert "人工" in last.reply
    assert ctx.state_load(7).form is None


def test_unrelated_message_gets_the_question_again(logistics):
    logistics()
    again = say("嗯嗯")
    assert again.kind == "form_step"
    assert again.trace["form_status"] == "asked"
    assert ctx.state_load(7).form is not None


def test_order_lookup_hook_is_replaceable(logistics):
    calls = []

    def lookup(order_no):
        calls.append(order_no)
        return ctx.OrderInfo(order_no=order_no, status="已发货", carrier="京东", tracking_no="JD1")

    previous = ctx._order_lookup
    ctx.order_lookup_register(lookup)
    try:
        logistics()
        assert "JD1" in say("1234567890123").reply
        assert calls == ["1234567890123"]
    finally:
        ctx.order_lookup_register(previous)


def test_redis_down_means_no_context_not_an_error(shop, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    decision = say("优选X1手机多少钱")
    assert decision.kind == "answer"
    assert "2999" in decision.reply
