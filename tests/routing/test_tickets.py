"""Ticket services: claim races, transfer, reply, notes, resolve + CSAT, return to bot, SLA alerts,
visibility (no IDOR) and the realtime events they publish."""

import datetime as dt
import threading

import pytest
from django.db import connection
from django.utils import timezone

from bots.models import Conversation, Message, Outbox
from core import realtime
from core.errors import ApplicationError
from routing import selectors
from routing.models import Ticket, TicketEvent
from routing.services import (
    csat_capture,
    handoff_start,
    sla_sweep,
    ticket_claim,
    ticket_close,
    ticket_customer_message,
    ticket_note_add,
    ticket_reply,
    ticket_resolve,
    ticket_return_to_bot,
    ticket_transfer,
)
from tests.routing.conftest import system_texts


def _queued(make_customer, name="客户"):
    conv = make_customer(name).conversation
    return handoff_start(conv.id, "customer_request", text="转人工")


def _events(group: str) -> list[dict]:
    return realtime.events_since(group, 0)


@pytest.mark.django_db(transaction=True)
def test_two_agents_claiming_at_once_exactly_one_wins(redis_clean, make_customer, make_group, make_agent):
    group = make_group("pre", auto_assign=False, is_default=True)
    agents = [make_agent("a1", [group]), make_agent("a2", [group])]
    for _round in range(3):
        ticket = _queued(make_customer)
        barrier = threading.Barrier(2)
        results: dict[int, object] = {}

        def claim(agent, ticket_id=ticket.id, barrier=barrier, results=results):
            try:
                barrier.wait()
                results[agent.id] = ticket_claim(ticket_id, agent.id)
            except ApplicationError as exc:
                results[agent.id] = exc.code
            finally:
                connection.close()

        threads = [threading.Thread(target=claim, args=(a,)) for a in agents]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        outcomes = sorted(str(r) if isinstance(r, str) else "won" for r in results.values())
        assert outcomes == ["already_claimed", "won"]
        ticket.refresh_from_db()
        winner = next(a for a in agents if not isinstance(results[a.id], str))
        assert (ticket.status, ticket.assignee_id) == (Ticket.Status.ASSIGNED, winner.id)
        assert ticket.events.filter(kind=TicketEvent.Kind.CLAIMED).count() == 1
        assert system_texts(ticket.conversation_id).count(f"客服 {winner.username} 为您服务，请问有什么可以帮您？") == 1
    # the claims were published once each, to the group, the winner and the supervisors
    assigned = [e for e in _events(f"agents.group.{group.id}") if e["event"] == "ticket.assigned"]
    assert len(assigned) == 3
    assert all(e["payload"]["action"] == "claimed" for e in assigned)
    assert [e["seq"] for e in assigned] == sorted(e["seq"] for e in assigned)


@pytest.mark.django_db
def test_transfer_reply_note_resolve_and_csat(
    redis_clean, make_customer, make_group, make_agent, django_capture_on_commit_callbacks
):
    pre, after = make_group("pre", auto_assign=False, is_default=True), make_group("after", auto_assign=False)
    a, b = make_agent("a1", [pre]), make_agent("b1", [after])
    with django_capture_on_commit_callbacks(execute=True):
        ticket = _queued(make_customer)
        ticket = ticket_claim(ticket.id, a.id)
        assert ticket_claim(ticket.id, a.id).assignee == a  # a second click by the winner is harmless
        reply = ticket_reply(ticket.id, a.id, "您好，请问订单号是多少？")
    assert (reply.sender, reply.direction) == (Message.Sender.AGENT, Message.Direction.OUT)
    assert Outbox.objects.filter(message=reply).exists()  # through the channel's outbox
    assert reply.trace["agent_id"] == a.id
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.WAITING_CUSTOMER and ticket.first_response_at is not None
    # the customer answers: the ticket is the agent's turn again
    assert ticket_customer_message(conversation_id=ticket.conversation_id).status == Ticket.Status.ASSIGNED
    # an internal note is kept but never sent
    messages_before = Message.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        note = ticket_note_add(ticket.id, a.id, "客户情绪稳定，疑似物流问题")
    assert note.text == "客户情绪稳定，疑似物流问题" and Message.objects.count() == messages_before
    assert not any("疑似物流" in str(e) for e in _events(f"conversation.{ticket.conversation_id}"))
    # B (another group) cannot see it, so cannot reply
    with pytest.raises(ApplicationError) as denied:
        ticket_reply(ticket.id, b.id, "我来")
    assert denied.value.status == 404
    # transfer to B's group with a note: back in that queue, B claims it
    with django_capture_on_commit_callbacks(execute=True):
        moved = ticket_transfer(ticket.id, to_group_id=after.id, note="物流问题，转售后", by_user_id=a.id)
    assert (moved.status, moved.group, moved.assignee) == (Ticket.Status.QUEUED, after, None)
    assert system_texts(ticket.conversation_id)[-1] == "正在为您转接人工客服，您是下一位，请稍候。"
    queued_events = [e for e in _events(f"agents.group.{after.id}") if e["event"] == "ticket.queued"]
    assert queued_events[-1]["payload"]["ticket"]["id"] == ticket.id
    with pytest.raises(ApplicationError) as not_visible:
        ticket_reply(ticket.id, a.id, "还在吗")  # A is no longer assignee nor in the group
    assert not_visible.value.status == 404
    ticket_claim(ticket.id, b.id)
    # direct transfer to an agent (a supervisor-style reassignment by the assignee)
    c = make_agent("c1", [after])
    assert ticket_transfer(ticket.id, to_agent_id=c.id, note="交给你", by_user_id=b.id).assignee == c
    # resolve: the conversation is resolved and the customer gets the CSAT question
    resolved = ticket_resolve(ticket.id, "物流", c.id)
    assert (resolved.status, resolved.category, resolved.csat_state) == ("resolved", "物流", "asked")
    assert Conversation.objects.get(pk=ticket.conversation_id).status == Conversation.Status.RESOLVED
    assert system_texts(ticket.conversation_id)[-1].startswith("本次服务已结束")
    assert csat_capture(ticket.conversation_id, "５") is True  # full-width digits too
    resolved.refresh_from_db()
    assert (resolved.csat_state, resolved.csat_score) == ("answered", 5)
    assert system_texts(ticket.conversation_id)[-1] == "感谢您的评价！"
    assert csat_capture(ticket.conversation_id, "5") is False  # answered once; the bot handles the rest
    assert ticket_close(ticket.id, c.id).status == Ticket.Status.CLOSED
    kinds = list(resolved.events.values_list("kind", flat=True))
    for kind in (
        "created",
        "claimed",
        "replied",
        "customer_replied",
        "note",
        "transferred",
        "resolved",
        "csat",
        "closed",
    ):
        assert kind in kinds


@pytest.mark.django_db
def test_csat_lapses_on_another_message_and_return_to_bot(redis_clean, make_customer, make_group, make_agent):
    group = make_group("pre", is_default=True)
    agent = make_agent("a1", [group])
    ticket = _queued(make_customer)
    assert ticket.assignee == agent
    ticket_resolve(ticket.id, "咨询", agent.id)
    assert csat_capture(ticket.conversation_id, "我还想问一下尺码") is False
    ticket.refresh_from_db()
    assert ticket.csat_state == "lapsed" and ticket.csat_score is None
    other = _queued(make_customer)
    back = ticket_return_to_bot(other.id, agent.id)
    assert (back.status, back.category) == (Ticket.Status.CLOSED, "returned_to_bot")
    assert Conversation.objects.get(pk=other.conversation_id).status == Conversation.Status.BOT
    assert system_texts(other.conversation_id)[-1].startswith("已为您转回智能助手")
    with pytest.raises(ApplicationError) as closed:
        ticket_reply(other.id, agent.id, "还在吗")
    assert closed.value.code == "not_open"


@pytest.mark.django_db
def test_sla_breach_alerts_supervisors_once(
    redis_clean, make_customer, make_group, make_agent, django_capture_on_commit_callbacks
):
    group = make_group("pre", auto_assign=False, is_default=True, sla_minutes=5)
    ticket = _queued(make_customer)
    fresh = _queued(make_customer)
    assert ticket.sla_due_at - ticket.created_at < dt.timedelta(minutes=5, seconds=5)
    Ticket.objects.filter(pk=ticket.pk).update(sla_due_at=timezone.now() - dt.timedelta(minutes=3))
    with django_capture_on_commit_callbacks(execute=True):
        assert sla_sweep() == [ticket.id]
    assert sla_sweep() == []  # flagged once
    ticket.refresh_from_db()
    assert ticket.sla_breached_at is not None
    assert ticket.events.filter(kind=TicketEvent.Kind.SLA_BREACHED, data__overdue_minutes=3).exists()
    alerts = [e for e in _events("supervisors") if e["payload"].get("alert") == "sla_breached"]
    assert [a["payload"]["ticket"]["id"] for a in alerts] == [ticket.id]
    assert alerts[0]["event"] == "ticket.updated" and alerts[0]["payload"]["ticket"]["sla_breached"]
    assert any(e["payload"].get("alert") for e in _events(f"agents.group.{group.id}"))
    assert not Ticket.objects.get(pk=fresh.pk).sla_breached_at


@pytest.mark.django_db
def test_visibility_agents_see_only_their_groups(redis_clean, make_customer, make_group, make_agent, supervisor):
    pre, vip = make_group("pre", auto_assign=False, is_default=True), make_group("vip", auto_assign=False)
    pre_agent, vip_agent = make_agent("pre1", [pre]), make_agent("vip1", [vip])
    mine = _queued(make_customer)
    theirs = _queued(make_customer)
    Ticket.objects.filter(pk=theirs.pk).update(group=vip)
    assert list(selectors.tickets_visible_to(pre_agent).values_list("id", flat=True)) == [mine.id]
    assert set(selectors.tickets_visible_to(supervisor).values_list("id", flat=True)) == {mine.id, theirs.id}
    assert selectors.conversation_for_agent(pre_agent, mine.conversation_id).id == mine.conversation_id
    for probe in (
        lambda: selectors.conversation_for_agent(pre_agent, theirs.conversation_id),
        lambda: selectors.conversation_for_agent(pre_agent, 10**9),
        lambda: ticket_claim(theirs.id, pre_agent.id),
        lambda: ticket_note_add(theirs.id, pre_agent.id, "偷看"),
        lambda: selectors.ticket_for_agent(pre_agent, theirs.id),
    ):
        with pytest.raises(ApplicationError) as err:
            probe()
        assert (err.value.status, err.value.code) == (404, "not_found")
    assert selectors.conversation_for_agent(supervisor, theirs.conversation_id)
    assert [t.id for t in selectors.queue_for(vip_agent)] == [theirs.id]
    # a supervisor may reassign across groups
    moved = ticket_transfer(theirs.id, to_agent_id=pre_agent.id, to_group_id=pre.id, by_user_id=supervisor.id)
    assert (moved.assignee, moved.group) == (pre_agent, pre)
    assert selectors.conversation_for_agent(pre_agent, theirs.conversation_id)
    # an agent who is neither assignee nor supervisor cannot resolve someone else's ticket
    other = make_agent("pre2", [pre])
    with pytest.raises(ApplicationError) as err:
        ticket_resolve(theirs.id, "x", other.id)
    assert (err.value.status, err.value.code) == (403, "not_your_ticket")


@pytest.mark.django_db(transaction=True)
def test_agents_customers_and_presence_changes_at_once_never_deadlock(
    redis_clean, make_customer, make_group, make_agent
):
    """Claims, replies, transfers, customers writing and hand-offs, presence changes and sweeps in parallel
    threads: every routing write takes its row locks in one order (conversation, ticket, agent)."""
    from routing import services as routing

    group = make_group("pre", is_default=True)
    agents = [make_agent(f"s{i}", [group], capacity=3) for i in range(3)]
    conversations = [make_customer(f"c{i}").conversation for i in range(10)]
    for conversation in conversations:
        handoff_start(conversation.id, "customer_request", text="转人工")
    errors: list[str] = []

    def run(work):
        try:
            work()
        except Exception as exc:  # anything but an ApplicationError is a failure (deadlocks included)
            errors.append(repr(exc))
        finally:
            connection.close()

    def agent_work(agent, rnd):
        for _ in range(25):
            ticket_id, status = rnd.choice(list(Ticket.objects.values_list("id", "status")))
            try:
                if status == Ticket.Status.QUEUED:
                    ticket_claim(ticket_id, agent.id)
                elif status in Ticket.WITH_AGENT:
                    choice = rnd.random()
                    if choice < 0.6:
                        ticket_reply(ticket_id, agent.id, "您好")
                    elif choice < 0.8:
                        ticket_transfer(ticket_id, to_group_id=group.id, by_user_id=agent.id, note="转")
                    else:
                        ticket_return_to_bot(ticket_id, agent.id)
            except ApplicationError:
                pass

    def customer_work(rnd):
        from django.db import transaction

        for _ in range(40):
            conversation_id = rnd.choice(conversations).id
            with transaction.atomic():  # like bots.services.conversation_handle: the conversation first
                conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
                if conversation.status in (Conversation.Status.QUEUED, Conversation.Status.HUMAN):
                    ticket_customer_message(conversation_id=conversation_id)
                else:
                    handoff_start(conversation_id, "customer_request", text="转人工")

    def presence_work(rnd):
        for _ in range(20):
            routing.agent_presence_set(rnd.choice(agents).id, rnd.choice(["online", "online", "away", "offline"]))
            routing.agent_heartbeat(rnd.choice(agents).id)
            routing.presence_sweep()
            routing.queues_dispatch_all()
            sla_sweep()

    import random

    work = [lambda a=a: agent_work(a, random.Random(a.id)) for a in agents]
    work += [lambda s=s: customer_work(random.Random(s)) for s in (1, 2)]
    work += [lambda: presence_work(random.Random(3))]
    threads = [threading.Thread(target=run, args=(w,)) for w in work]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # and the books balance: at most one open ticket per conversation
    open_per_conversation = Ticket.objects.filter(status__in=Ticket.OPEN).values_list("conversation_id", flat=True)
    assert len(open_per_conversation) == len(set(open_per_conversation))


@pytest.mark.django_db
def test_a_blocked_agent_reply_is_no_first_response(
    redis_clean, make_customer, make_group, make_agent, django_capture_on_commit_callbacks
):
    from core import sensitive
    from core.models import SensitiveWord, SensitiveWordList

    sensitive.cache_reset()
    word_list = SensitiveWordList.objects.create(name="t")
    SensitiveWord.objects.create(word_list=word_list, text="代开发票", category="fraud", action="block")
    group = make_group("g", auto_assign=False, is_default=True)
    agent = make_agent("a1", [group])
    with django_capture_on_commit_callbacks(execute=True):
        ticket = ticket_claim(_queued(make_customer).id, agent.id)
        blocked = ticket_reply(ticket.id, agent.id, "可以代开发票")
    assert blocked.status == Message.Status.BLOCKED
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.ASSIGNED and ticket.first_response_at is None
    assert TicketEvent.objects.filter(ticket=ticket, kind=TicketEvent.Kind.REPLIED, data__blocked=True).exists()
    with django_capture_on_commit_callbacks(execute=True):
        ticket_reply(ticket.id, agent.id, "您好，请问有什么可以帮您？")
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.WAITING_CUSTOMER and ticket.first_response_at is not None
    sensitive.cache_reset()
