"""Assignment (least loaded, longest idle, capacity), queue positions told to customers, presence timeouts."""

import datetime as dt

import pytest
from django.utils import timezone

from bots.models import Conversation
from routing.models import AgentProfile, Ticket, TicketEvent
from routing.services import (
    agent_heartbeat,
    agent_presence_set,
    handoff_start,
    presence_sweep,
    ticket_claim,
    ticket_reply,
    ticket_resolve,
)
from tests.routing.conftest import system_texts

pytestmark = pytest.mark.django_db


def _handoff(make_customer, name="客户"):
    conv = make_customer(name).conversation
    return handoff_start(conv.id, "customer_request", text="转人工")


def test_least_loaded_then_longest_idle_then_capacity(redis_clean, make_customer, make_group, make_agent):
    group = make_group("pre", is_default=True)
    busy = make_agent("busy", [group], capacity=2, last_assigned_minutes=300)
    recent = make_agent("recent", [group], capacity=2, last_assigned_minutes=5)
    idle = make_agent("idle", [group], capacity=2, last_assigned_minutes=60)
    make_agent("away", [group], presence="away", capacity=9)
    make_agent("off", [group], presence="offline", capacity=9)
    make_agent("other", [make_group("vip")], capacity=9)
    first = _handoff(make_customer)
    assert first.assignee == busy  # all idle at 0 load: the one idle longest
    second = _handoff(make_customer)
    assert second.assignee == idle  # busy has 1; idle (60 min) waited longer than recent (5 min)
    third = _handoff(make_customer)
    assert third.assignee == recent
    fourth = _handoff(make_customer)
    assert fourth.assignee == busy  # everyone has 1 now; busy was assigned first, so idle longest
    assert [_handoff(make_customer).assignee for _ in range(2)] == [idle, recent]
    # every seat (3 x 2) is taken: the next one waits in the queue
    queued = _handoff(make_customer, "排队者")
    assert (queued.status, queued.assignee) == (Ticket.Status.QUEUED, None)
    assert system_texts(queued.conversation_id) == ["正在为您转接人工客服，您是下一位，请稍候。"]
    # the assigned customers were told who serves them; their conversations are with a human
    assert system_texts(first.conversation_id) == ["客服 busy 为您服务，请问有什么可以帮您？"]
    assert Conversation.objects.get(pk=first.conversation_id).status == Conversation.Status.HUMAN
    assert first.events.get(kind=TicketEvent.Kind.ASSIGNED).assignee == busy


def test_queue_positions_are_told_when_they_change_meaningfully(
    redis_clean, make_customer, make_group, make_agent, settings, django_capture_on_commit_callbacks
):
    settings.KEFU_QUEUE_NOTIFY_STEP = 2
    group = make_group("pre", auto_assign=False, is_default=True)
    agent = make_agent("a1", [group])
    tickets = [_handoff(make_customer, f"客户{i}") for i in range(5)]
    told = [system_texts(t.conversation_id) for t in tickets]
    assert told[0] == ["正在为您转接人工客服，您是下一位，请稍候。"]
    assert told[3] == ["正在为您转接人工客服，您前面还有 3 位"]
    assert [t.position_told for t in Ticket.objects.order_by("id")] == [0, 1, 2, 3, 4]

    with django_capture_on_commit_callbacks(execute=True):
        ticket_claim(tickets[0].id, agent.id)  # positions 1,2,3,4 -> 0,1,2,3
    assert system_texts(tickets[1].conversation_id)[-1] == "正在为您转接人工客服，您是下一位，请稍候。"
    assert len(system_texts(tickets[2].conversation_id)) == 1  # 2 -> 1: not worth a message
    assert len(system_texts(tickets[4].conversation_id)) == 1  # 4 -> 3: not yet

    with django_capture_on_commit_callbacks(execute=True):
        ticket_claim(tickets[1].id, agent.id)  # 2,3,4 were told 2,3,4; now 0,1,2
    assert system_texts(tickets[2].conversation_id)[-1] == "正在为您转接人工客服，您是下一位，请稍候。"
    assert system_texts(tickets[3].conversation_id)[-1] == "正在为您转接人工客服，您前面还有 1 位"
    assert system_texts(tickets[4].conversation_id)[-1] == "正在为您转接人工客服，您前面还有 2 位"
    assert [len(system_texts(t.conversation_id)) for t in tickets[2:]] == [2, 2, 2]
    # an urgent ticket jumping the queue is not announced to those it pushed back
    Ticket.objects.filter(pk=tickets[4].pk).update(priority=4)
    with django_capture_on_commit_callbacks(execute=True):
        ticket_claim(tickets[2].id, agent.id)
    assert len(system_texts(tickets[3].conversation_id)) == 2


def test_presence_timeout_requeues_unanswered_tickets(
    redis_clean, make_customer, make_group, make_agent, settings, django_capture_on_commit_callbacks
):
    settings.KEFU_PRESENCE_TIMEOUT_SECONDS = 60
    group = make_group("pre", is_default=True)
    gone = make_agent("gone", [group], capacity=5)
    answered, unanswered = _handoff(make_customer), _handoff(make_customer)
    assert answered.assignee == unanswered.assignee == gone
    ticket_reply(answered.id, gone.id, "您好，我来帮您看看")
    AgentProfile.objects.filter(user=gone).update(last_seen=timezone.now() - dt.timedelta(seconds=61))
    live = make_agent("live", [group], presence="away")  # away: gets nothing new
    with django_capture_on_commit_callbacks(execute=True):
        assert presence_sweep() == [gone.id]
    assert AgentProfile.objects.get(user=gone).presence == AgentProfile.Presence.OFFLINE
    unanswered.refresh_from_db()
    answered.refresh_from_db()
    assert (unanswered.status, unanswered.assignee) == (Ticket.Status.QUEUED, None)
    assert unanswered.events.filter(kind=TicketEvent.Kind.REQUEUED, data__reason="agent_timeout").exists()
    assert system_texts(unanswered.conversation_id)[-1] == "正在为您转接人工客服，您是下一位，请稍候。"
    assert Conversation.objects.get(pk=unanswered.conversation_id).status == Conversation.Status.QUEUED
    assert (answered.status, answered.assignee) == (Ticket.Status.WAITING_CUSTOMER, gone)  # kept
    assert presence_sweep() == []  # once
    # the other agent comes online: the queue is dispatched to them
    with django_capture_on_commit_callbacks(execute=True):
        agent_presence_set(live.id, "online")
    unanswered.refresh_from_db()
    assert unanswered.assignee == live
    # the vanished agent's browser comes back: the heartbeat revives them
    assert agent_heartbeat(gone.id).presence == AgentProfile.Presence.ONLINE
    # a fresh heartbeat keeps an agent online through the sweep
    assert presence_sweep() == []


def test_the_agent_just_assigned_is_no_longer_the_longest_idle(
    redis_clean, make_customer, make_group, make_agent, django_capture_on_commit_callbacks
):
    group = make_group("pre", is_default=True)
    first, second, _third = (
        make_agent(n, [group], last_assigned_minutes=m) for n, m in (("a", 300), ("b", 200), ("c", 100))
    )
    with django_capture_on_commit_callbacks(execute=True):
        ticket = _handoff(make_customer)
    assert ticket.assignee == first
    with django_capture_on_commit_callbacks(execute=True):
        ticket_resolve(ticket.id, "done", first.id)  # everyone is at load 0 again
    assert _handoff(make_customer).assignee == second
