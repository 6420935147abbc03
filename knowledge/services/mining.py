"""Knowledge mining: which topics customers ask about together (Apriori over conversations), which questions the
bot could not answer (clustering), and what operators do with the results.

- **Runs** (``MiningRun``, kind ``rules`` or ``clusters``) are started from the admin (the operator sets minimum
  support and confidence) or by beat (``mining_run_schedule``: weekly rules, nightly clusters, with the settings of
  the kind's last run) and executed by ``knowledge.tasks.mining_run`` on the ``ml`` queue, writing their progress.
- **Where the data comes from.** Conversations and messages belong to the bots app, which knowledge never imports.
  The analytics app (which reads everything) registers two sources at start-up with ``mining_sources_register``:
  ``topics(since)`` yields one transaction per conversation (its topic ids ``faq:<id>``, ``intent:<name>``,
  ``product:<id>``) and ``questions(since, limit)`` returns the decrypted text of the latest messages that ended
  in a fallback or a hand-off. Without a source a run fails with a clear message.
- **Association rules** (``AssociationRule``): ``knowledge.ml.mining.mine`` (efficient-apriori). A rule found
  again keeps its status. ``association_rule_accept`` links the two FAQ entries of a one-to-one FAQ rule
  (``FaqRelation``) and the bot then offers the second after answering the first ("您可能还想了解：...", see
  ``related_questions``); ``association_rule_dismiss`` hides it (and unlinks it if it was accepted).
- **Unanswered groups** (``UnansweredCluster``): ``knowledge.ml.clustering.cluster_questions``; labels, examples and
  keywords are stored encrypted. ``unanswered_cluster_draft`` turns a group into a disabled draft FAQ (standard
  question = the group's typical question, similar questions = its other examples) in one click.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from core.errors import ApplicationError
from knowledge import versions
from knowledge.ml.mining import Rule, describe_rule, mine
from knowledge.models import AssociationRule, Faq, FaqRelation, Intent, MiningRun, Product, UnansweredCluster
from knowledge.services.faq import faq_save, faqs_changed

logger = logging.getLogger(__name__)

TopicSource = Callable[[dt.datetime], Iterable[Iterable[str]]]
QuestionSource = Callable[[dt.datetime, int], list[str]]

MAX_RULES = 1000  # rules stored per run (the best by lift)
MAX_CLUSTERS = 50
RELATED_MAX = 3  # related questions offered after an FAQ answer
STALE_RUN = dt.timedelta(minutes=30)  # a "running" run this old whose task comes back was killed: take it over

_sources: dict[str, Callable[..., Any]] = {}


def mining_sources_register(*, topics: TopicSource | None = None, questions: QuestionSource | None = None) -> None:
    """Called by the app that can read conversations (analytics) in its ``ready()``."""
    if topics is not None:
        _sources["topics"] = topics
    if questions is not None:
        _sources["questions"] = questions


# -- runs ---------------------------------------------------------------------------------------------------


def _queue(run_id: int) -> None:
    from knowledge.tasks import mining_run

    try:
        mining_run.delay(run_id)
    except Exception:  # broker down: the run stays queued; the next scheduled run or a retry from the admin
        logger.exception("could not queue mining run", extra={"run_id": run_id})


@transaction.atomic
def mining_run_start(*, run: MiningRun | None = None, user: Any = None, **params: Any) -> MiningRun:
    """Save a new queued run (``run``, e.g. from the admin's add form, or one made of ``params``: kind, days,
    min_support, min_confidence, max_length, max_questions) and queue its task after commit."""
    if run is None:
        run = MiningRun(**params)
    elif run.pk is not None:
        raise ApplicationError(_("This run has already been started."), code="run_started")
    run.status, run.progress, run.progress_note = MiningRun.Status.QUEUED, 0, _("Queued")
    if getattr(user, "pk", None):
        run.created_by = user
    run.full_clean()
    run.save()
    transaction.on_commit(lambda: _queue(run.id))
    return run


def mining_run_schedule(*, kind: str) -> MiningRun | None:
    """Beat: start a run of ``kind`` with the settings of its last run (the operator's last choice), unless one is
    already queued or running."""
    busy = MiningRun.objects.filter(kind=kind, status__in=[MiningRun.Status.QUEUED, MiningRun.Status.RUNNING])
    if busy.filter(created_at__gte=timezone.now() - dt.timedelta(hours=6)).exists():
        return None
    last = MiningRun.objects.filter(kind=kind).order_by("-id").first()
    params = {}
    if last is not None:
        params = {
            "days": last.days,
            "min_support": last.min_support,
            "min_confidence": last.min_confidence,
            "max_length": last.max_length,
            "max_questions": last.max_questions,
        }
    return mining_run_start(kind=kind, **params)


def _progress(run_id: int, percent: int, note: str) -> None:
    """Written outside any transaction, so the admin sees it while the run works."""
    MiningRun.objects.filter(pk=run_id).update(progress=percent, progress_note=note[:200], updated_at=timezone.now())


def _claim(run_id: int) -> MiningRun | None:
    now = timezone.now()
    claimed = (
        MiningRun.objects.filter(pk=run_id)
        .filter(Q(status=MiningRun.Status.QUEUED) | Q(status=MiningRun.Status.RUNNING, updated_at__lt=now - STALE_RUN))
        .update(status=MiningRun.Status.RUNNING, started_at=now, progress=1, updated_at=now, error="")
    )
    return MiningRun.objects.get(pk=run_id) if claimed else None


def mining_run_execute(*, run_id: int) -> MiningRun:
    """Run one queued mining run; a run already done, failed or running elsewhere is returned as it is."""
    run = _claim(run_id)
    if run is None:
        return MiningRun.objects.get(pk=run_id)
    started = time.perf_counter()
    try:
        if run.kind == MiningRun.Kind.CLUSTERS:
            stats = _clusters_execute(run)
        else:
            stats = _rules_execute(run)
    except Exception as exc:  # noqa: BLE001 - recorded on the run for the operator
        logger.exception("mining run failed", extra={"run_id": run.id})
        message = exc.message if isinstance(exc, ApplicationError) else f"{type(exc).__name__}: {exc}"
        MiningRun.objects.filter(pk=run.id).update(
            status=MiningRun.Status.FAILED,
            error=str(message)[:2000],
            progress_note=_("Run failed"),
            finished_at=timezone.now(),
            updated_at=timezone.now(),
        )
        return MiningRun.objects.get(pk=run.id)
    stats["seconds"] = round(time.perf_counter() - started, 2)
    MiningRun.objects.filter(pk=run.id).update(
        status=MiningRun.Status.DONE,
        progress=100,
        progress_note=_("Done"),
        stats=stats,
        finished_at=timezone.now(),
        updated_at=timezone.now(),
    )
    return MiningRun.objects.get(pk=run.id)


def _source(name: str) -> Callable[..., Any]:
    source = _sources.get(name)
    if source is None:
        raise ApplicationError(_("No conversation data source is registered (is the analytics app installed?)."))
    return source


# -- association rules ----------------------------------------------------------------------------------------

_TRAILING = re.compile(r"[\s?？。.!！~～]+$")


def topic_labels(topics: Iterable[str]) -> dict[str, str]:
    """Operators' names for topic ids: an FAQ's standard question, an intent's description (or name), a product's
    name. Unknown ids are left out (``describe_rule`` then shows the id)."""
    faq_ids, intent_names, product_ids = set(), set(), set()
    for topic in topics:
        kind, _sep, value = str(topic).partition(":")
        if kind == "faq" and value.isdigit():
            faq_ids.add(int(value))
        elif kind == "intent" and value:
            intent_names.add(value)
        elif kind == "product" and value.isdigit():
            product_ids.add(int(value))
    labels: dict[str, str] = {}
    for pk, question in Faq.objects.filter(pk__in=faq_ids).values_list("pk", "question"):
        labels[f"faq:{pk}"] = _TRAILING.sub("", question) or question
    for name, description in Intent.objects.filter(name__in=intent_names).values_list("name", "description"):
        labels[f"intent:{name}"] = description or name
    for pk, name in Product.objects.filter(pk__in=product_ids).values_list("pk", "name"):
        labels[f"product:{pk}"] = name
    return labels


def rule_describe(rule: AssociationRule) -> str:
    """e.g. ``问发票的客户也常问税率（置信度 0.72，提升度 3.1）``."""
    shown = Rule(
        lhs=(rule.lhs_label or rule.lhs_key,),
        rhs=(rule.rhs_label or rule.rhs_key,),
        support=rule.support,
        confidence=rule.confidence,
        lift=rule.lift,
        count=rule.count,
    )
    return describe_rule(shown, {})


def _rules_execute(run: MiningRun) -> dict[str, Any]:
    source = _source("topics")
    since = timezone.now() - dt.timedelta(days=run.days)
    _progress(run.id, 5, _("Reading conversations"))
    t0 = time.perf_counter()
    transactions = [list(t) for t in source(since)]
    read_s = time.perf_counter() - t0
    _progress(run.id, 40, _("%(n)d conversations read; mining") % {"n": len(transactions)})
    t0 = time.perf_counter()
    result = mine(
        transactions, min_support=run.min_support, min_confidence=run.min_confidence, max_length=run.max_length
    )
    mine_s = time.perf_counter() - t0
    _progress(run.id, 80, _("%(n)d rules found; saving") % {"n": len(result.rules)})
    t0 = time.perf_counter()
    saved = _rules_save(run, result.rules[:MAX_RULES])
    save_s = time.perf_counter() - t0
    return {
        "conversations": len(transactions),
        "with_topics": result.n_transactions,
        "itemsets": len(result.itemsets),
        "rules": len(result.rules),
        "saved": saved,
        "read_s": round(read_s, 2),
        "mine_s": round(mine_s, 2),
        "save_s": round(save_s, 2),
    }


def _key(items: Iterable[str]) -> str:
    return "|".join(items)[:300]


@transaction.atomic
def _rules_save(run: MiningRun, rules: list[Rule]) -> int:
    labels = topic_labels({t for r in rules for t in (*r.lhs, *r.rhs)})

    def label(items: tuple[str, ...]) -> str:
        return "、".join(labels.get(t) or t for t in items)[:600]

    existing = {(r.lhs_key, r.rhs_key): r for r in AssociationRule.objects.select_for_update()}
    now = timezone.now()
    new, changed = [], []
    for rule in rules:
        key = (_key(rule.lhs), _key(rule.rhs))
        row = existing.get(key) or AssociationRule(lhs_key=key[0], rhs_key=key[1], created_at=now)
        row.run = run
        row.lhs, row.rhs = list(rule.lhs), list(rule.rhs)
        row.lhs_label, row.rhs_label = label(rule.lhs), label(rule.rhs)
        row.support, row.confidence, row.lift, row.count = rule.support, rule.confidence, rule.lift, rule.count
        row.updated_at = now
        (changed if row.pk else new).append(row)
    fields = ["run", "lhs", "rhs", "lhs_label", "rhs_label", "support", "confidence", "lift", "count", "updated_at"]
    AssociationRule.objects.bulk_update(changed, fields, batch_size=500)
    AssociationRule.objects.bulk_create(new, batch_size=500)
    return len(new) + len(changed)


@transaction.atomic
def association_rule_accept(*, rule: AssociationRule, user: Any = None) -> FaqRelation:
    """Link the rule's FAQ to its consequent FAQ: the bot offers the second after answering the first."""
    rule = AssociationRule.objects.select_for_update().get(pk=rule.pk)
    pair = rule.faq_pair
    if pair is None:
        raise ApplicationError(
            _("Only a rule from one FAQ entry to another can be linked; dismiss it or leave it for information."),
            code="not_faq_pair",
        )
    faqs = Faq.objects.in_bulk(pair)
    if len(faqs) != 2:
        raise ApplicationError(_("One of the rule's FAQ entries no longer exists."), code="faq_missing")
    relation, created = FaqRelation.objects.get_or_create(
        faq_id=pair[0], related_id=pair[1], defaults={"rule": rule, "score": rule.lift}
    )
    if not created:
        relation.rule, relation.score = rule, rule.lift
        relation.save(update_fields=["rule", "score"])
    rule.status = AssociationRule.Status.ACCEPTED
    rule.decided_by = user if getattr(user, "pk", None) else None
    rule.decided_at = timezone.now()
    rule.save(update_fields=["status", "decided_by", "decided_at", "updated_at"])
    faqs_changed()  # every worker reloads the related questions with the FAQ index
    return relation


@transaction.atomic
def association_rule_dismiss(*, rule: AssociationRule, user: Any = None) -> AssociationRule:
    """Hide the rule from the "new" list; an accepted rule's FAQ link is removed."""
    rule = AssociationRule.objects.select_for_update().get(pk=rule.pk)
    if FaqRelation.objects.filter(rule=rule).delete()[0]:
        faqs_changed()
    rule.status = AssociationRule.Status.DISMISSED
    rule.decided_by = user if getattr(user, "pk", None) else None
    rule.decided_at = timezone.now()
    rule.save(update_fields=["status", "decided_by", "decided_at", "updated_at"])
    return rule


# -- related questions (read by the decision pipeline) --------------------------------------------------------


def _relations_load() -> dict[int, list[tuple[int, str]]]:
    related: dict[int, list[tuple[int, str]]] = {}
    rows = (
        FaqRelation.objects.filter(faq__enabled=True, related__enabled=True)
        .order_by("faq_id", "-score", "id")
        .values_list("faq_id", "related_id", "related__question")
    )
    for faq_id, related_id, question in rows:
        if len(related.setdefault(faq_id, [])) < RELATED_MAX:
            related[faq_id].append((related_id, question))
    return related


related_cache = versions.cached("faq", _relations_load)


def related_questions(faq_id: int, version: str | None = None) -> list[tuple[int, str]]:
    """(id, standard question) of the FAQs offered after ``faq_id``, best first (cached per FAQ version)."""
    return list(related_cache.get(version).get(faq_id, ()))


# -- unanswered questions -------------------------------------------------------------------------------------


def _clusters_execute(run: MiningRun) -> dict[str, Any]:
    from knowledge.ml.clustering import cluster_questions

    source = _source("questions")
    since = timezone.now() - dt.timedelta(days=run.days)
    _progress(run.id, 5, _("Reading unanswered questions"))
    t0 = time.perf_counter()
    texts = [t for t in source(since, run.max_questions) if t and t.strip()]
    read_s = time.perf_counter() - t0
    _progress(run.id, 30, _("%(n)d questions read; grouping") % {"n": len(texts)})
    t0 = time.perf_counter()
    clusters = cluster_questions(texts, min_cluster_size=2, max_clusters=MAX_CLUSTERS) if texts else []
    cluster_s = time.perf_counter() - t0
    _progress(run.id, 90, _("%(n)d groups found; saving") % {"n": len(clusters)})
    with transaction.atomic():
        # groups nobody acted on are replaced; drafted and dismissed ones stay as history
        UnansweredCluster.objects.filter(status=UnansweredCluster.Status.NEW).delete()
        UnansweredCluster.objects.bulk_create(
            [
                UnansweredCluster(
                    run=run, label=c.label, size=c.size, examples=list(c.examples), keywords=list(c.keywords)
                )
                for c in clusters
            ]
        )
    return {
        "questions": len(texts),
        "groups": len(clusters),
        "grouped": sum(c.size for c in clusters),
        "read_s": round(read_s, 2),
        "cluster_s": round(cluster_s, 2),
    }


@transaction.atomic
def unanswered_cluster_draft(*, cluster: UnansweredCluster) -> Faq:
    """A disabled draft FAQ from a group: the typical question as the standard question, the other examples as
    similar questions. A group already drafted returns its FAQ."""
    cluster = UnansweredCluster.objects.select_for_update().get(pk=cluster.pk)
    if cluster.draft_faq_id is not None:
        return cluster.draft_faq
    question = cluster.label.strip()[:300]
    similar = [e.strip()[:300] for e in cluster.examples if e and e.strip() and e.strip()[:300] != question]
    draft = Faq(question=question, answer=_("(Draft: write the answer, then enable the entry.)"), enabled=False)
    faq = faq_save(faq=draft, similar=similar)
    cluster.draft_faq = faq
    cluster.status = UnansweredCluster.Status.DRAFTED
    cluster.save(update_fields=["draft_faq", "status", "updated_at"])
    return faq


@transaction.atomic
def unanswered_cluster_dismiss(*, cluster: UnansweredCluster) -> UnansweredCluster:
    cluster.status = UnansweredCluster.Status.DISMISSED
    cluster.save(update_fields=["status", "updated_at"])
    return cluster


def unanswered_clusters_latest(*, limit: int = 10) -> list[UnansweredCluster]:
    """The groups of the last finished clustering run (biggest first), for the dashboard."""
    run = MiningRun.objects.filter(kind=MiningRun.Kind.CLUSTERS, status=MiningRun.Status.DONE).order_by("-id").first()
    if run is None:
        return []
    return list(
        UnansweredCluster.objects.filter(run=run)
        .exclude(status=UnansweredCluster.Status.DISMISSED)
        .order_by("-size", "id")[:limit]
    )
