"""The knowledge app's entry points: ``decide`` (text + context → Decision) and the writes operators make.

Topics live in submodules (``pipeline``, ``rules``, ``faq``, ``intents``, ``catalog``); the names other
apps use are re-exported here: ``from knowledge import services; services.decide(text=..., context=...)``.
"""

from knowledge.services.catalog import (
    catalog_changed,
    product_delete,
    product_save,
    synonym_delete,
    synonym_save,
)
from knowledge.services.faq import faq_delete, faq_save, faqs_changed
from knowledge.services.intents import (
    intent_delete,
    intent_examples_import,
    intent_model_activate,
    intent_model_rollback,
    intent_model_train_run,
    intent_model_train_start,
    intent_save,
)
from knowledge.services.pipeline import decide, decide_warm_up, handoff_hook_register
from knowledge.services.rules import keyword_rule_delete, keyword_rule_save, keyword_rules_changed


def caches_reset() -> None:
    """Forget every in-process knowledge cache (rules, FAQ index, intent model, catalogue)."""
    from knowledge import versions

    versions.reset_all()


__all__ = [
    "caches_reset",
    "catalog_changed",
    "decide",
    "decide_warm_up",
    "faq_delete",
    "faq_save",
    "faqs_changed",
    "handoff_hook_register",
    "intent_delete",
    "intent_examples_import",
    "intent_model_activate",
    "intent_model_rollback",
    "intent_model_train_run",
    "intent_model_train_start",
    "intent_save",
    "keyword_rule_delete",
    "keyword_rule_save",
    "keyword_rules_changed",
    "product_delete",
    "product_save",
    "synonym_delete",
    "synonym_save",
]
