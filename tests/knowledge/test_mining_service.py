"""Knowledge mining end to end: conversations (real messages, read through the analytics sources) → Apriori rules
→ accept (FAQs linked, the bot offers "您可能还想了解") or dismiss; unanswered questions → groups → a draft FAQ in one
click; the admin pages and actions; a run on a real Celery worker with progress."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.urls import reverse

from core.errors import ApplicationError
from knowledge import services, versions
from knowledge.decision import DecisionContext
from knowledge.models import AssociationRule, Faq, FaqQuestion, FaqRelation, MiningRun, UnansweredCluster
from knowledge.services import mining
from tests.analytics.conftest import History, Turn, at

pytestmark = pytest.mark.django_db


@pytest.fixture
def faqs(db):
    invoice = Faq.objects.create(question="怎么开发票？", answer="在订单详情页申请电子发票。")
    tax = Faq.objects.create(question="发票税率是多少", answer="税率 13%。")
    other = Faq.objects.create(question="几天发货", answer="48 小时内发货。")
    FaqQuestion.objects.create(faq=invoice, text="能开发票吗")
    return invoice, tax, other


@pytest.fixture
def chats(web_channel, faqs):
    """30 conversations: 20 ask invoice then tax, 5 only invoice, 5 only shipping (and an intent)."""
    invoice, tax, other = faqs
    h = History(web_channel, None)
    for i in range(30):
        if i < 20:
            turns = [Turn(0, topics={"faq_id": invoice.id}), Turn(30, topics={"faq_id": tax.id})]
        elif i < 25:
            turns = [Turn(0, topics={"faq_id": invoice.id})]
        else:
            turns = [Turn(0, topics={"faq_id": other.id}), Turn(30, topics={"intent": "shipping"})]
        h.conversation(h.customer(), at(9 + i * 0.1), turns)
    return h


def run(kind="rules", **params):
    created = mining.mining_run_start(kind=kind, **params)
    return mining.mining_run_execute(run_id=created.id)


def test_rules_run_finds_the_association_with_its_measures(chats, faqs):
    invoice, tax, _other = faqs
    result = run(days=3660, min_support=0.1, min_confidence=0.5)
    assert result.status == "done" and result.progress == 100
    assert result.stats["conversations"] == 30 and result.stats["rules"] >= 1
    rule = AssociationRule.objects.get(lhs=[f"faq:{tax.id}"], rhs=[f"faq:{invoice.id}"])
    assert rule.confidence == pytest.approx(1.0) and rule.support == pytest.approx(20 / 30)
    forward = AssociationRule.objects.get(lhs=[f"faq:{invoice.id}"], rhs=[f"faq:{tax.id}"])
    assert forward.confidence == pytest.approx(20 / 25)
    assert forward.lift == pytest.approx((20 / 25) / (20 / 30))
    assert forward.faq_pair == (invoice.id, tax.id)
    assert mining.rule_describe(forward) == "问怎么开发票的客户也常问发票税率是多少（置信度 0.80，提升度 1.2）"
    assert AssociationRule.objects.filter(lhs__contains=["intent:shipping"]).exists()


def test_thresholds_are_applied(chats):
    run(days=3660, min_support=0.5, min_confidence=0.9)
    assert all(r.support >= 0.5 and r.confidence >= 0.9 for r in AssociationRule.objects.all())
    assert not AssociationRule.objects.filter(lhs__contains=["intent:shipping"]).exists()


def test_accept_links_the_faqs_and_the_bot_offers_the_related_question(
    chats, faqs, redis_clean, settings, django_capture_on_commit_callbacks
):
    settings.KEFU_FAQ_EMBEDDINGS = "none"
    invoice, tax, _other = faqs
    run(days=3660, min_support=0.1, min_confidence=0.5)
    rule = AssociationRule.objects.get(lhs=[f"faq:{invoice.id}"], rhs=[f"faq:{tax.id}"])
    before = versions.current("faq")
    with django_capture_on_commit_callbacks(execute=True):
        relation = mining.association_rule_accept(rule=rule)
    assert (relation.faq_id, relation.related_id, relation.rule_id) == (invoice.id, tax.id, rule.id)
    assert versions.current("faq") != before
    rule.refresh_from_db()
    assert rule.status == "accepted" and rule.decided_at

    services.caches_reset()
    context = DecisionContext(conversation_id=901, channel_slug="web")
    decision = services.decide(text="怎么开发票", context=context)
    assert decision.trace["faq_id"] == invoice.id
    assert decision.reply == "在订单详情页申请电子发票。\n\n您可能还想了解：\n1. 发票税率是多少\n回复数字即可。"
    assert decision.trace["related_faq_ids"] == [tax.id]
    follow = services.decide(text="1", context=context)
    assert follow.trace["faq_id"] == tax.id and follow.reply.startswith("税率 13%。")

    # a new run keeps the decision; dismissing removes the link
    run(days=3660, min_support=0.1, min_confidence=0.5)
    rule.refresh_from_db()
    assert rule.status == "accepted"
    with django_capture_on_commit_callbacks(execute=True):
        mining.association_rule_dismiss(rule=rule)
    assert not FaqRelation.objects.exists()
    services.caches_reset()
    assert "您可能还想了解" not in services.decide(text="怎么开发票", context=DecisionContext()).reply


def test_only_faq_to_faq_rules_can_be_linked(chats):
    run(days=3660, min_support=0.1, min_confidence=0.5)
    rule = AssociationRule.objects.filter(lhs__contains=["intent:shipping"]).first()
    with pytest.raises(ApplicationError) as error:
        mining.association_rule_accept(rule=rule)
    assert error.value.code == "not_faq_pair"


def test_a_run_without_a_source_fails_with_a_message(monkeypatch):
    monkeypatch.setattr(mining, "_sources", {})
    result = run()
    assert result.status == "failed" and "analytics" in result.error


def test_a_finished_run_is_not_run_twice(chats):
    result = run(days=3660, min_support=0.1, min_confidence=0.5)
    again = mining.mining_run_execute(run_id=result.id)
    assert again.finished_at == result.finished_at


def test_schedule_uses_the_last_settings_and_skips_when_busy(django_capture_on_commit_callbacks):
    MiningRun.objects.create(kind="rules", status="done", min_support=0.05, min_confidence=0.6, days=30)
    scheduled = mining.mining_run_schedule(kind="rules")
    assert (scheduled.min_support, scheduled.min_confidence, scheduled.days) == (0.05, 0.6, 30)
    assert mining.mining_run_schedule(kind="rules") is None  # one is queued already


def test_invalid_thresholds_are_refused():
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        mining.mining_run_start(min_support=0, min_confidence=2)


# -- unanswered questions ------------------------------------------------------------------------------------


@pytest.fixture
def unanswered(web_channel):
    h = History(web_channel, None)
    texts = [
        "能开专票吗",
        "可以开增值税专票吗",
        "专票能开吗",
        "能不能开专票",
        "你们支持花呗分期吗",
        "花呗可以分期吗",
        "可以用花呗分期付款吗",
        "今天天气怎么样",
    ]
    for i, text in enumerate(texts):
        h.conversation(h.customer(), at(9 + i * 0.1), [Turn(0, kind="fallback", text=text)])
    return h


def test_clusters_run_groups_questions_and_stores_them_encrypted(unanswered):
    result = run(kind="clusters", days=3660, max_questions=100)
    assert result.status == "done" and result.stats["questions"] == 8
    clusters = list(UnansweredCluster.objects.order_by("-size"))
    assert len(clusters) == 2 and sorted(c.size for c in clusters) == [3, 4]
    invoice = next(c for c in clusters if "专票" in c.label)
    assert invoice.size == 4 and len(invoice.examples) == 4 and "专票" in invoice.keywords
    with connection.cursor() as cursor:
        cursor.execute("SELECT label, examples, keywords FROM knowledge_unansweredcluster")
        for row in cursor.fetchall():
            assert all("专票" not in value and "花呗" not in value for value in row)  # ciphertext only
    # a new run replaces the groups nobody acted on, keeps the drafted ones
    faq = mining.unanswered_cluster_draft(cluster=invoice)
    run(kind="clusters", days=3660, max_questions=100)
    assert UnansweredCluster.objects.filter(status="drafted").get().draft_faq == faq
    assert UnansweredCluster.objects.filter(status="new").count() == 2


def test_draft_faq_from_a_group(unanswered):
    run(kind="clusters", days=3660, max_questions=100)
    cluster = UnansweredCluster.objects.get(label__isnull=False, size=4)
    faq = mining.unanswered_cluster_draft(cluster=cluster)
    assert not faq.enabled and faq.question == cluster.label
    similar = set(faq.similar_questions.values_list("text", flat=True))
    assert similar == set(cluster.examples) - {cluster.label} and len(similar) == 3
    cluster.refresh_from_db()
    assert cluster.status == "drafted" and cluster.draft_faq == faq
    assert mining.unanswered_cluster_draft(cluster=cluster) == faq  # a second click opens the same draft


# -- the admin ------------------------------------------------------------------------------------------------


@pytest.fixture
def operator(client):
    from django.contrib.auth.models import Group, Permission

    user = User.objects.create_user("op", password="pw-long-enough-1", is_staff=True)
    group = Group.objects.create(name="operator")
    group.permissions.set(Permission.objects.filter(content_type__app_label="knowledge"))
    user.groups.add(group)
    client.force_login(user)
    return client


def test_admin_starts_a_run_with_its_thresholds(operator, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = operator.post(
            reverse("admin:knowledge_miningrun_add"),
            {
                "kind": "rules",
                "days": 30,
                "min_support": "0.02",
                "min_confidence": "0.4",
                "max_length": 2,
                "max_questions": 4000,
            },
        )
    assert response.status_code == 302
    run_ = MiningRun.objects.get()
    assert (run_.status, run_.min_support, run_.min_confidence, run_.created_by.username) == ("queued", 0.02, 0.4, "op")
    assert len(callbacks) == 1  # the task is queued after commit
    page = operator.get(reverse("admin:knowledge_miningrun_changelist")).content.decode()
    assert 'http-equiv="refresh"' in page and "<progress" in page
    assert operator.get(reverse("admin:knowledge_miningrun_change", args=[run_.pk])).status_code == 200


def test_admin_results_page_accept_and_dismiss(operator, chats, faqs, redis_clean):
    invoice, tax, _other = faqs
    run(days=3660, min_support=0.1, min_confidence=0.5)
    page = operator.get(reverse("admin:knowledge_associationrule_changelist")).content.decode()
    assert "问怎么开发票的客户也常问发票税率是多少（置信度 0.80，提升度 1.2）" in page
    rule = AssociationRule.objects.get(lhs=[f"faq:{invoice.id}"], rhs=[f"faq:{tax.id}"])
    url = reverse("admin:knowledge_associationrule_decide", args=[rule.pk, "accept"])
    assert f'formaction="{url}"' in page
    assert operator.post(url).status_code == 302
    assert FaqRelation.objects.filter(faq=invoice, related=tax, rule=rule).exists()
    other = AssociationRule.objects.filter(status="new").first()
    response = operator.post(
        reverse("admin:knowledge_associationrule_changelist"),
        {"action": "dismiss_selected", "_selected_action": [other.pk]},
    )
    assert response.status_code == 302
    other.refresh_from_db()
    assert other.status == "dismissed"
    assert operator.get(reverse("admin:knowledge_faq_change", args=[invoice.pk])).status_code == 200


def test_admin_one_click_draft_faq(operator, unanswered):
    run(kind="clusters", days=3660, max_questions=100)
    page = operator.get(reverse("admin:knowledge_unansweredcluster_changelist")).content.decode()
    cluster = UnansweredCluster.objects.get(size=4)
    url = reverse("admin:knowledge_unansweredcluster_draft", args=[cluster.pk])
    assert f'formaction="{url}"' in page and cluster.label in page
    response = operator.post(url)
    faq = Faq.objects.get(enabled=False)
    assert response.status_code == 302 and response["Location"] == reverse("admin:knowledge_faq_change", args=[faq.pk])
    assert faq.question == cluster.label


def test_supervisors_may_look_but_not_decide(client, chats, faqs):
    from django.contrib.auth.models import Group, Permission

    user = User.objects.create_user("sup", password="pw-long-enough-1", is_staff=True)
    group = Group.objects.create(name="supervisor")
    group.permissions.set(Permission.objects.filter(content_type__app_label="knowledge", codename__startswith="view_"))
    user.groups.add(group)
    client.force_login(user)
    run(days=3660, min_support=0.1, min_confidence=0.5)
    assert client.get(reverse("admin:knowledge_associationrule_changelist")).status_code == 200
    rule = AssociationRule.objects.first()
    assert client.post(reverse("admin:knowledge_associationrule_decide", args=[rule.pk, "accept"])).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_run_now_on_a_real_worker_reports_progress(client, redis_clean, web_channel):
    from tests.conftest import running_worker, wait_for

    h = History(web_channel, None)
    faq_a = Faq.objects.create(question="A", answer="a")
    faq_b = Faq.objects.create(question="B", answer="b")
    for i in range(6):
        h.conversation(
            h.customer(), at(9 + i), [Turn(0, topics={"faq_id": faq_a.id}), Turn(5, topics={"faq_id": faq_b.id})]
        )
    MiningRun.objects.create(kind="rules", status="done", days=3660, min_support=0.2, min_confidence=0.5)
    client.force_login(User.objects.create_superuser("root", "r@example.com", "Root-pass-long-1"))
    with running_worker(queues=("ml",)):
        response = client.post(reverse("admin:knowledge_miningrun_now", args=["rules"]))
        assert response.status_code == 302

        def finished():
            newest = MiningRun.objects.order_by("-id").first()
            return newest if newest.status in ("done", "failed") else None

        latest = wait_for(finished, timeout=30)
    assert latest.status == "done", latest.error
    assert latest.progress == 100 and latest.stats["rules"] == 2
    assert AssociationRule.objects.count() == 2


def test_related_faqs_can_be_added_by_hand(operator, faqs, redis_clean, django_capture_on_commit_callbacks):
    invoice, tax, _other = faqs
    before = versions.current("faq")
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post(
            reverse("admin:knowledge_faqrelation_add"), {"faq": invoice.pk, "related": tax.pk, "score": "1"}
        )
    assert response.status_code == 302
    assert FaqRelation.objects.get().related == tax and versions.current("faq") != before
    assert mining.related_questions(invoice.pk) == [(tax.pk, "发票税率是多少")]
