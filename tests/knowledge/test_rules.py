"""Keyword rules: every match type, priority, channel scope, time windows, regex safety, the per-worker
automaton rebuilt when the version key moves, and CSV import/export."""

from __future__ import annotations

import datetime as dt

import pytest
import tablib
from django.core.exceptions import ValidationError
from django.utils import timezone

from knowledge import rules, services
from knowledge.decision import DecisionContext
from knowledge.models import KeywordRule
from knowledge.resources import KeywordRuleResource

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_caches(redis_clean):
    services.caches_reset()
    yield
    services.caches_reset()


def add(keyword, reply, match_type="contains", priority=100, **extra):
    rule = KeywordRule(keyword=keyword, reply=reply, match_type=match_type, priority=priority, **extra)
    return services.keyword_rule_save(rule=rule)


def decide(text, channel="web", now=None, nickname="小王"):
    services.caches_reset()  # db tests never commit, so version keys never move: reload explicitly
    return services.decide(
        text=text, context=DecisionContext(channel_slug=channel, nickname=nickname, now=now or timezone.now())
    )


def test_each_match_type():
    add("发票|开票", "contains", "contains")
    add("退货|运费", "all", "all")
    add("hi|哈喽", "exact", "exact")
    add(r"^\d{4}$", "regex", "regex")

    assert decide("可以开票吗").reply == "contains"
    assert decide("退货的运费谁出").reply == "all"
    assert decide("退货怎么弄").kind == "fallback"  # only one of the two words
    assert decide("Hi!").reply == "exact"  # normalised (case, trailing punctuation)
    assert decide("hi there").kind == "fallback"
    assert decide("1234").reply == "regex"
    assert decide("12345").kind == "fallback"


def test_higher_priority_wins_and_trace_names_the_runner_up():
    low = add("发货", "low", priority=10)
    high = add("发货|快递", "high", priority=200)
    decision = decide("什么时候发货")
    assert decision.reply == "high"
    assert decision.trace["stage"] == "keyword"
    assert decision.trace["rule_id"] == high.id
    assert [c["rule_id"] for c in decision.trace["candidates"]] == [low.id]


def test_channel_scope():
    add("优惠", "oa only", channels="oa-main, kf")
    add("优惠", "everywhere", priority=1)
    assert decide("有优惠吗", channel="oa-main").reply == "oa only"
    assert decide("有优惠吗", channel="kf").reply == "oa only"
    assert decide("有优惠吗", channel="web").reply == "everywhere"


def test_date_range_and_daily_window():
    now = timezone.now()
    add("活动", "running", active_from=now - dt.timedelta(days=1), active_until=now + dt.timedelta(days=1))
    add("活动", "later", priority=500, active_from=now + dt.timedelta(days=2))
    add("客服", "night", daily_start=dt.time(21, 0), daily_end=dt.time(9, 0))
    assert decide("有活动吗", now=now).reply == "running"
    assert decide("有活动吗", now=now + dt.timedelta(days=3)).reply == "later"
    assert decide("有活动吗", now=now + dt.timedelta(days=10)).reply == "later"
    local = timezone.get_current_timezone()
    night = dt.datetime(2026, 11, 27, 23, 30, tzinfo=local)
    morning = dt.datetime(2026, 11, 28, 8, 59, tzinfo=local)
    noon = dt.datetime(2026, 11, 28, 12, 0, tzinfo=local)
    assert decide("客服在吗", now=night).reply == "night"  # the window wraps midnight
    assert decide("客服在吗", now=morning).reply == "night"
    assert decide("客服在吗", now=noon).kind == "fallback"


def test_disabled_rules_do_not_match():
    add("发票", "off", enabled=False)
    assert decide("发票").kind == "fallback"


def test_reply_variables():
    add("你好", "您好，{nickname}！")
    assert decide("你好", nickname="李先生").reply == "您好，李先生！"
    with pytest.raises(ValidationError) as exc:
        add("你好", "您好 {name}")
    assert "reply" in exc.value.message_dict


@pytest.mark.parametrize(
    "pattern",
    [r"(a+)+b", r"(\w+\s?)*$", r"(a|aa)+", r"(.*a){10}", r"(a*)*", r".*.*.*=.*", r"(\w|\d\d)+x"],
)
def test_catastrophic_regexes_are_refused(pattern):
    assert rules.regex_problem(pattern) is not None


@pytest.mark.parametrize(
    "pattern", [r"^\d{4}$", r"订单号?\s*[:：]?\s*\d{10,}", r"双\s*(11|十一)", r"(ab|cd)+e", r"\d+元"]
)
def test_ordinary_regexes_are_accepted(pattern):
    assert rules.regex_problem(pattern) is None


def test_invalid_and_empty_matching_regexes_are_refused():
    assert rules.regex_problem("([a-z") is not None
    assert rules.regex_problem("x*") is not None  # matches every message
    with pytest.raises(ValidationError) as exc:
        add("(a+)+$", "boom", match_type="regex")
    assert "keyword" in exc.value.message_dict


def test_rule_change_rebuilds_the_automaton_through_the_version_key(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        rule = add("包邮", "满 99 包邮")
    version = rules.current_version()
    index = rules.cache.index()
    assert index.match("包邮吗", channel="", now=timezone.now()).rule.id == rule.id
    assert rules.cache.index() is index  # same version: no rebuild

    with django_capture_on_commit_callbacks(execute=True):
        rule.keyword = "运费"
        services.keyword_rule_save(rule=rule)
    assert rules.current_version() != version
    rebuilt = rules.cache.index()
    assert rebuilt is not index
    assert rebuilt.match("包邮吗", channel="", now=timezone.now()).rule is None
    assert rebuilt.match("运费多少", channel="", now=timezone.now()).rule.id == rule.id

    with django_capture_on_commit_callbacks(execute=True):
        services.keyword_rule_delete(rule=rule)
    assert rules.cache.index().match("运费多少", channel="", now=timezone.now()).rule is None


def test_import_and_export_csv(django_capture_on_commit_callbacks):
    add("发票", "开票说明")
    exported = KeywordRuleResource().export()
    assert "发票" in exported.csv
    data = tablib.Dataset(headers=["name", "keyword", "match_type", "reply", "priority", "enabled", "channels"])
    data.append(["退货", "退货|退换", "contains", "七天无理由", 100, 1, ""])
    data.append(["坏的", "(a+)+$", "regex", "x", 100, 1, ""])
    result = KeywordRuleResource().import_data(data, dry_run=False, rollback_on_validation_errors=True)
    assert result.has_validation_errors()  # the catastrophic regex is a row error ...
    assert not KeywordRule.objects.filter(name__in=["坏的", "退货"]).exists()  # ... and nothing was saved
    del data[1]
    with django_capture_on_commit_callbacks(execute=True):
        result = KeywordRuleResource().import_data(data, dry_run=False, rollback_on_validation_errors=True)
    assert not result.has_errors() and not result.has_validation_errors()
    assert decide("我想退换").reply == "七天无理由"
