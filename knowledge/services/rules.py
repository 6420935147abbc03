"""Keyword rule writes: every change moves ``kefu:ver:keyword_rules`` after commit so workers rebuild."""

from __future__ import annotations

from django.db import transaction

from knowledge import rules
from knowledge.models import KeywordRule


@transaction.atomic
def keyword_rule_save(*, rule: KeywordRule) -> KeywordRule:
    rule.full_clean()
    rule.save()
    transaction.on_commit(rules.bump_version)
    return rule


@transaction.atomic
def keyword_rule_delete(*, rule: KeywordRule) -> None:
    rule.delete()
    transaction.on_commit(rules.bump_version)


def keyword_rules_changed() -> None:
    """After a bulk change (import, list edit): rebuild the automaton in every worker."""
    transaction.on_commit(rules.bump_version)
