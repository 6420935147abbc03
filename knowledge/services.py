"""The knowledge app's entry points: ``decide`` (text + context → Decision) and the writes operators make."""

from __future__ import annotations

import time

from django.db import transaction
from django.utils.translation import gettext as _

from knowledge import rules
from knowledge.decision import Decision, DecisionContext
from knowledge.models import KeywordRule


def _render(template: str, context: DecisionContext) -> str:
    return template.replace("{nickname}", context.nickname or _("customer"))


def decide(*, text: str, context: DecisionContext) -> Decision:
    started = time.perf_counter()
    normalized = " ".join(text.split()).lower()[:2000]
    trace: dict = {"input": normalized[:200], "stages": []}

    def finish(kind: str, reply: str, **extra) -> Decision:
        trace.update(extra)
        trace["kind"] = kind
        trace["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 3)
        return Decision(kind=kind, reply=reply, trace=trace)

    if context.message_type not in ("text", "voice", "link"):
        if context.message_type == "event":
            return finish("ignore", "", stage="event")
        return finish("fallback", _("Sorry, I can only read text messages for now."), stage="unsupported_type")

    if not normalized:
        return finish("fallback", _("Please tell me what you need help with."), stage="empty")

    trace["stages"].append("keyword")
    for rule in rules.cache.rules():
        if rule.matches(normalized):
            return finish("answer", _render(rule.reply, context), stage="keyword", rule_id=rule.id, score=1.0)

    return finish(
        "fallback",
        _("Sorry, I have not learned how to answer that yet. Could you rephrase it, or reply 人工 for an agent?"),
        stage="fallback",
    )


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
