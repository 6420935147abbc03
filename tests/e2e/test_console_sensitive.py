"""The agent console in Chromium (real daphne, Celery worker, PostgreSQL, Redis): an agent's reply with a block word
never reaches the customer (the simulator shows nothing), and the console says why, live and after a reload."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from bots.models import Customer, Message, Outbox
from core import sensitive
from core.models import SensitiveWordList
from routing.models import Ticket
from tests.conftest import wait_for
from tests.e2e.test_console import console, say, shop, simulator  # noqa: F401 (shop is a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_reply_with_a_block_word_is_not_sent_and_the_agent_sees_why(browser, asgi_server, shop, celery_worker):  # noqa: F811
    word_list = SensitiveWordList.objects.create(name="违禁词")
    sensitive.words_import(word_list=word_list, text="代开发票\t违禁\tblock\n")  # committed: every process reloads

    agent = console(browser, asgi_server, "agent1")
    sim = simulator(browser, asgi_server)
    before = Customer.objects.order_by("-id").values_list("id", flat=True).first() or 0
    sim.fill("#new-nickname", "李先生")
    sim.click("#create-customer")
    expect(sim.locator("#ws-status")).to_have_class("status online")
    say(sim, "转人工")
    ticket = wait_for(lambda: Ticket.objects.filter(customer_id__gt=before).first())
    customer = ticket.customer
    agent.locator(f"#queue-list li[data-ticket-id='{ticket.id}'] button.claim").click()
    expect(agent.locator(f"#mine-list li[data-ticket-id='{ticket.id}']")).to_have_count(1)

    agent.fill("#reply-input", "可以给您代 开 发 票")
    agent.press("#reply-input", "Enter")
    blocked = agent.locator("#transcript li.msg.agent").filter(has_text="可以给您代 开 发 票")
    expect(blocked.locator(".delivery")).to_contain_text(re.compile(r"代开发票.*违禁"))
    expect(agent.locator("#notice")).to_have_class(re.compile(r"\berror\b"))
    expect(agent.locator("#notice")).to_contain_text("代开发票")

    # a clean reply goes through: the customer sees it, and never the blocked one
    agent.fill("#reply-input", "您好，请问有什么可以帮您？")
    agent.press("#reply-input", "Enter")
    customer_side = sim.locator("#transcript li.out[data-sender=agent] .bubble")
    expect(customer_side).to_have_text(["您好，请问有什么可以帮您？"])
    assert "发票" not in " ".join(sim.locator("#transcript .bubble").all_text_contents())
    row = Outbox.objects.get(message__conversation__customer=customer, reason="sensitive_word")  # content is encrypted
    assert (row.status, row.reason, row.sent_at) == ("blocked", "sensitive_word", None)
    assert Message.objects.get(pk=row.message_id).status == "blocked"

    # after a reload the console still tells why (from the stored message)
    agent.reload()
    expect(agent.locator("#ws-status")).to_have_class("status online")
    agent.click("#tab-mine")
    agent.locator(f"#mine-list li[data-ticket-id='{ticket.id}']").click()
    again = agent.locator("#transcript li.msg.agent").filter(has_text="可以给您代 开 发 票")
    expect(again.locator(".delivery")).to_contain_text(re.compile(r"代开发票.*违禁"))
    for page in (agent, sim):
        page.context.close()
