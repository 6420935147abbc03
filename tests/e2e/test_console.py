"""The agent console in Chromium, against the real daphne, Celery worker, PostgreSQL and Redis: two agents and the
chat simulator (a customer) through a whole hand-off, a VIP customer's angry message, reconnect replay, and
customer text that looks like HTML."""

from __future__ import annotations

import re
import time

import pytest
from django.contrib.auth.models import Group, User
from playwright.sync_api import expect

from bots import services as bots
from bots.channels.base import InboundMessage
from bots.models import Customer, Message
from routing.models import AgentProfile, Ticket
from tests.conftest import wait_for
from tests.e2e.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "browser-test-pass-1"


@pytest.fixture
def shop(web_channel, redis_clean):
    """The demo shop's routing: groups 售前 (default, claim from the queue), 售后 and VIP (assign automatically),
    the default rules, canned replies, demo customers with orders and RFM scores; agent1 (售前 + 售后), agent2
    (售前 + VIP), a supervisor and an admin for the simulator."""
    from routing.demo import seed_routing

    for name in ("agent1", "agent2"):
        user = User.objects.create_user(name, password=PASSWORD)
        Group.objects.get_or_create(name="agent")[0].user_set.add(user)
    boss = User.objects.create_user("boss", password=PASSWORD)
    Group.objects.get_or_create(name="supervisor")[0].user_set.add(boss)
    User.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    seed_routing()
    return {name: User.objects.get(username=name) for name in ("agent1", "agent2", "boss")}


# Test-only: remembers the page's sockets and, while ``window.__outage`` is set, points new ones at a closed port
# (a dropped connection that cannot come back until the outage ends).
OUTAGE = """
(() => {
  const Original = window.WebSocket;
  window.__sockets = [];
  window.__outage = false;
  window.WebSocket = class extends Original {
    constructor(url, protocols) {
      super(window.__outage ? url.replace(location.host, "127.0.0.1:9") : url, protocols);
      window.__sockets.push(this);
    }
  };
})();
"""


def console(browser, base_url: str, username: str, init_script: str | None = None):
    """A new browser context logged in at /accounts/login/ (agents are not staff) with the console open."""
    context = browser.new_context(locale="zh-CN")
    if init_script:
        context.add_init_script(init_script)
    page = context.new_page()
    page.goto(f"{base_url}/console/")
    page.wait_for_url("**/accounts/login/?next=/console/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(f"{base_url}/console/")
    expect(page.locator("#ws-status")).to_have_class("status online")
    return page


def queue_item(page, ticket_id: int):
    return page.locator(f"#queue-list li[data-ticket-id='{ticket_id}']")


def simulator(browser, base_url: str):
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    login(page, base_url, "admin", PASSWORD)
    page.goto(f"{base_url}/simulator/")
    return page


def say(page, text: str) -> None:
    page.fill("#message-input", text)
    page.press("#message-input", "Enter")


def zh(text) -> str:
    from django.utils import translation

    with translation.override("zh-hans"):
        return str(text)


def online(user) -> bool:
    return AgentProfile.objects.filter(user=user, presence="online").exists()


def test_handoff_claim_race_reply_note_transfer_resolve_and_csat(browser, asgi_server, shop, celery_worker):
    from routing.services.tickets import MSG_CSAT_QUESTION, MSG_CSAT_THANKS
    from routing.views import ERROR_MESSAGES

    pages = {"agent1": console(browser, asgi_server, "agent1"), "agent2": console(browser, asgi_server, "agent2")}
    sim = simulator(browser, asgi_server)
    sim.fill("#new-nickname", "王女士")
    sim.click("#create-customer")
    expect(sim.locator("#ws-status")).to_have_class("status online")
    say(sim, "转人工")
    customer = Customer.objects.order_by("-id").first()
    ticket = wait_for(lambda: Ticket.objects.filter(customer=customer).first())
    assert (ticket.status, ticket.reason, ticket.group.slug) == ("queued", "customer_request", "pre_sales")
    for page in pages.values():
        expect(queue_item(page, ticket.id).locator(".name")).to_have_text("王女士")
    expect(sim.locator("#transcript li.out[data-sender=system] .bubble").first).to_contain_text("人工客服")

    # both agents click "claim" in the same millisecond: exactly one wins, the other is told
    at = pages["agent1"].evaluate("() => Date.now() + 500")
    for page in pages.values():
        page.evaluate(
            """([id, at]) => setTimeout(() => document.querySelector(
                   `#queue-list li[data-ticket-id="${id}"] button.claim`).click(), at - Date.now())""",
            [ticket.id, at],
        )
    ticket = wait_for(lambda: Ticket.objects.filter(pk=ticket.id, status="assigned").first())
    winner = next(name for name, user in shop.items() if user.id == ticket.assignee_id)
    loser = "agent2" if winner == "agent1" else "agent1"
    a, b = pages[winner], pages[loser]
    expect(b.locator("#notice")).to_have_text(zh(ERROR_MESSAGES["already_claimed"]))
    expect(queue_item(b, ticket.id)).to_have_count(0)
    expect(a.locator("#notice")).to_have_class("notice ok")
    expect(a.locator(f"#mine-list li[data-ticket-id='{ticket.id}']")).to_have_count(1)

    # a canned reply picked with "/" goes to the customer through the outbox
    a.fill("#reply-input", "/gre")
    expect(a.locator("#canned-menu li b")).to_have_text(["/greet"])
    a.press("#reply-input", "Enter")
    expect(a.locator("#reply-input")).to_have_value(
        f"您好，我是客服{shop[winner].agent_profile.display_name}，很高兴为您服务，请问有什么可以帮您？"
    )
    a.press("#reply-input", "Enter")
    agent_bubbles = sim.locator("#transcript li.out[data-sender=agent] .bubble")
    expect(agent_bubbles).to_have_count(1)
    expect(agent_bubbles).to_contain_text(["很高兴为您服务"])
    expect(a.locator("#transcript li.msg.agent .bubble")).to_contain_text(["很高兴为您服务"])

    # an internal note: shown to agents, never to the customer
    a.check("#mode-note")
    a.fill("#reply-input", "客户很着急，优先处理")
    a.press("#reply-input", "Enter")
    expect(a.locator("#transcript li.note .bubble")).to_have_text(["客户很着急，优先处理"])

    # transfer to the other agent with a note; they see the conversation and its history
    a.click("#transfer-button")
    a.select_option("#transfer-agent", str(shop[loser].id))
    a.fill("#transfer-note", "请跟进发货时间")
    a.click("#transfer-submit")
    expect(a.locator(f"#mine-list li[data-ticket-id='{ticket.id}']")).to_have_count(0)
    b.click("#tab-mine")
    b.locator(f"#mine-list li[data-ticket-id='{ticket.id}']").click()
    expect(b.locator("#transcript li.note .bubble")).to_have_text(["客户很着急，优先处理", "请跟进发货时间"])
    expect(b.locator("#resolve-button")).to_be_visible()

    # resolve: the customer is asked for a rating and answers 5
    b.click("#resolve-button")
    b.select_option("#resolve-category", "question_answered")
    b.click("#resolve-submit")
    system = sim.locator("#transcript li.out[data-sender=system] .bubble")
    expect(system.last).to_have_text(zh(MSG_CSAT_QUESTION))
    say(sim, "5")
    expect(system.last).to_have_text(zh(MSG_CSAT_THANKS))
    ticket.refresh_from_db()
    assert (ticket.status, ticket.category, ticket.csat_score) == ("resolved", "question_answered", 5)
    expect(b.locator("#ticket-badges .csat")).to_be_visible()
    # the note never reached the customer
    assert "客户很着急" not in " ".join(sim.locator("#transcript .bubble").all_text_contents())
    assert all("着急" not in m.content for m in Message.objects.filter(conversation_id=ticket.conversation_id))
    for page in (*pages.values(), sim):
        page.context.close()


def test_angry_vip_customer_lands_in_the_vip_group_with_high_priority(browser, asgi_server, shop, celery_worker):
    vip = Customer.objects.get(external_id="web-demo-customer")  # the demo shop's best customer (张女士)
    page = console(browser, asgi_server, "agent2")  # VIP group: assigned automatically while online
    wait_for(lambda: online(shop["agent2"]))
    sim = simulator(browser, asgi_server)
    sim.select_option("#customer-select", str(vip.id))
    expect(sim.locator("#ws-status")).to_have_class("status online")
    say(sim, "你们到底怎么回事？！发货慢得要死，气死我了！！")
    ticket = wait_for(lambda: Ticket.objects.filter(customer=vip).first())
    assert (ticket.reason, ticket.group.slug, ticket.priority_name, ticket.tier) == ("anger", "vip", "high", "vip")
    page.click("#tab-mine")
    item = page.locator(f"#mine-list li[data-ticket-id='{ticket.id}']")
    expect(item).to_have_class(re.compile(r"\bprio-high\b"))
    expect(item.locator(".badge.tier-vip")).to_be_visible()
    item.click()
    expect(page.locator("#card-tier")).to_have_class("tier tier-vip")
    expect(page.locator("#card-orders li")).to_have_count(5)
    expect(page.locator("#transcript li.event.created")).to_contain_text("VIP")
    for p in (page, sim):
        p.context.close()


def test_reconnect_replays_missed_events_once_and_customer_text_stays_text(browser, asgi_server, shop, web_channel):
    from routing.services import handoff_start, ticket_claim

    payload = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    customer = bots.web_customer_create(channel=web_channel, nickname="<b>黑客</b>")
    bots.message_receive(
        channel=web_channel,
        inbound=InboundMessage(external_id="x-1", sender_id=customer.external_id, type="text", text=payload),
    )
    conversation_id = customer.conversations.get().id
    ticket = handoff_start(conversation_id, "customer_request", text="转人工")
    ticket_claim(ticket.id, shop["agent1"].id)

    page = console(browser, asgi_server, "agent1", init_script=OUTAGE)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.click("#tab-mine")
    item = page.locator(f"#mine-list li[data-ticket-id='{ticket.id}']")
    expect(item.locator(".name")).to_have_text("<b>黑客</b>")
    item.click()
    expect(page.locator("#transcript li.msg.in .bubble")).to_have_text([payload])
    expect(page.locator("#conversation-title")).to_contain_text("<b>黑客</b>")
    assert page.locator("#transcript img").count() == 0 and page.locator("#transcript script").count() == 0

    # the connection drops and cannot come back; meanwhile the customer writes and a ticket joins agent1's queue
    page.evaluate("() => { window.__outage = true; window.__sockets.forEach((s) => s.close()); }")
    expect(page.locator("#ws-status")).not_to_have_class("status online")
    bots.message_receive(
        channel=web_channel,
        inbound=InboundMessage(external_id="x-2", sender_id=customer.external_id, type="text", text="还在吗？"),
    )
    other = bots.web_customer_create(channel=web_channel, nickname="排队的客户")
    queued = handoff_start(
        bots.message_receive(
            channel=web_channel,
            inbound=InboundMessage(external_id="x-3", sender_id=other.external_id, type="text", text="转人工"),
        )[0].conversation_id,
        "customer_request",
        text="转人工",
    )
    time.sleep(0.5)  # a few reconnect attempts fail meanwhile
    page.evaluate("() => { window.__outage = false; }")
    expect(page.locator("#ws-status")).to_have_class("status online", timeout=15000)
    expect(page.locator("#transcript li.msg.in .bubble")).to_have_text([payload, "还在吗？"])
    expect(queue_item(page, queued.id)).to_have_count(1)
    time.sleep(0.5)  # nothing arrives twice
    expect(page.locator("#transcript li.msg.in")).to_have_count(2)
    expect(queue_item(page, queued.id)).to_have_count(1)
    assert dialogs == []
    page.context.close()
