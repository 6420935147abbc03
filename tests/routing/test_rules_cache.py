"""The enabled routing rules are kept per process for RULES_TTL seconds; saves and deletes clear the copy."""

import pytest

from routing.models import AgentGroup, RoutingRule
from routing.services import rules


@pytest.mark.django_db
def test_rules_are_read_once_then_served_from_memory(django_assert_num_queries):
    group = AgentGroup.objects.create(name="售后")
    RoutingRule.objects.create(name="invoice", keywords="发票", group=group, triggers_handoff=True)
    with django_assert_num_queries(1):
        assert [r.name for r in rules.rules_enabled(handoff_triggers_only=True)] == ["invoice"]
    with django_assert_num_queries(0):
        assert [r.name for r in rules.rules_enabled()] == ["invoice"]
        assert rules.rules_enabled()[0].group.name == "售后"  # the group came with the rules


@pytest.mark.django_db
def test_a_save_or_delete_in_this_process_is_seen_at_once():
    group = AgentGroup.objects.create(name="售前")
    rule = RoutingRule.objects.create(name="a", group=group, position=2)
    assert [r.name for r in rules.rules_enabled()] == ["a"]
    RoutingRule.objects.create(name="b", group=group, position=1)
    assert [r.name for r in rules.rules_enabled()] == ["b", "a"]
    rule.enabled = False
    rule.save()
    assert [r.name for r in rules.rules_enabled()] == ["b"]
    RoutingRule.objects.filter(name="b").delete()
    assert rules.rules_enabled() == []


@pytest.mark.django_db
def test_a_change_made_elsewhere_is_seen_after_the_ttl(monkeypatch):
    group = AgentGroup.objects.create(name="VIP")
    RoutingRule.objects.create(name="vip", group=group)
    assert len(rules.rules_enabled()) == 1
    RoutingRule.objects.update(enabled=False)  # no signal: as if another process had changed it
    assert len(rules.rules_enabled()) == 1  # still the copy
    monkeypatch.setattr(rules, "RULES_TTL", 0.0)
    assert rules.rules_enabled() == []
