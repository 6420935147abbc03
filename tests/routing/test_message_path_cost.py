"""What the routing checks cost on every message the bot handles: statements per call (real database)."""

import pytest

from routing.models import Ticket
from routing.services import csat_capture, handoff_check, handoff_start
from tests.routing.conftest import customer_said as _said

pytestmark = pytest.mark.django_db


def test_csat_capture_without_a_pending_survey_is_one_statement(make_customer, django_assert_num_queries):
    customer = make_customer("甲")
    with django_assert_num_queries(1):
        assert csat_capture(customer.conversation.id, "5", customer_id=customer.id) is False


def test_csat_capture_with_a_pending_survey_still_answers_it(redis_clean, make_customer):
    customer = make_customer("甲")
    ticket = handoff_start(customer.conversation.id, "customer_request", text="转人工")
    Ticket.objects.filter(pk=ticket.pk).update(
        status=Ticket.Status.RESOLVED, csat_state=Ticket.CsatState.ASKED, csat_asked_at=ticket.created_at
    )
    assert csat_capture(customer.conversation.id, "4", customer_id=customer.id) is True
    ticket.refresh_from_db()
    assert (ticket.csat_state, ticket.csat_score) == (Ticket.CsatState.ANSWERED, 4)


def test_handoff_check_reads_the_history_in_one_statement(redis_clean, make_customer, django_assert_max_num_queries):
    conv = make_customer("甲").conversation
    for text in ("你好", "有M码吗", "多少钱"):
        _said(conv, text, kind="fallback")
    current = _said(conv, "什么颜色")
    with django_assert_max_num_queries(2):  # the history, and the enabled trigger rules
        reason = handoff_check(
            conversation_id=conv.id,
            text="什么颜色",
            decision_kind="fallback",
            decision_trace={"kind": "fallback"},
            message_id=current.id,
            conversation=conv,
        )
    assert reason == "fallback_streak"


def test_the_history_starts_after_the_last_ticket_and_skips_the_current_message(redis_clean, make_customer):
    from routing.services.handoff import _earlier_customer_messages

    conv = make_customer("甲").conversation
    _said(conv, "旧的一条")
    handoff_start(conv.id, "customer_request", text="转人工")
    newer = [_said(conv, f"新的{n}") for n in range(3)]
    history = _earlier_customer_messages(conv.id, 20, newer[-1].id)
    assert [m.content for m in history] == ["新的1", "新的0"]
    assert [m.trace for m in history] == [{"kind": "answer"}, {"kind": "answer"}]
    assert [m.content for m in _earlier_customer_messages(conv.id, 1, None)] == ["新的2"]
