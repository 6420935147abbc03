"""The dashboard in headless Chromium: the charts are drawn (their canvases are not blank), the figures shown are
the SQL results for the hand-checked day of tests/analytics/conftest.py, the filters work, the CSP holds."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from playwright.sync_api import expect

from analytics import facts, services
from tests.analytics import conftest as fixtures
from tests.analytics.conftest import DAY, at
from tests.e2e.conftest import login

# the hand-checked day of the analytics tests
builder, agent_group, agent_user = fixtures.builder, fixtures.agent_group, fixtures.agent_user
history, rolled_up = fixtures.history, fixtures.rolled_up

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "browser-test-pass-1"
CHARTS = ["chart-daily", "chart-solve", "chart-reasons", "chart-times", "chart-intents", "chart-csat", "chart-segments"]

# pixels drawn on a chart's canvas (ECharts' background is transparent: a blank canvas has none)
DRAWN_PIXELS = """(id) => {
  const canvas = document.querySelector('#' + id + ' canvas');
  if (!canvas) { return -1; }
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let drawn = 0;
  for (let i = 3; i < data.length; i += 4) { if (data[i] > 0) { drawn++; } }
  return drawn;
}"""


def sql_latency():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY (trace->>'elapsed_ms')::float8) "
            "FROM bots_message WHERE direction = 'in' AND trace->>'kind' IS NOT NULL "
            "AND created_at >= %s AND created_at < %s",
            facts.day_bounds(DAY),
        )
        return cursor.fetchone()[0]


def sql_solve_rate():
    rows = facts.conversation_facts(DAY, now=at(48))
    return sum(r["solved"] for r in rows) / sum(r["ended"] for r in rows)


def test_dashboard_draws_its_charts_and_shows_the_sql_figures(page, asgi_server, rolled_up):
    user = User.objects.create_user("operator", password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get_or_create(name="operator")[0])
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" and "404" not in m.text else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("response", lambda r: problems.append(r.url) if r.status >= 400 and "favicon" not in r.url else None)
    login(page, asgi_server, "operator", PASSWORD)
    page.goto(f"{asgi_server}/dashboard/?from={DAY}&to={DAY}")
    expect(page.locator("#dashboard")).to_have_attribute("data-state", "ready", timeout=15000)

    # the figures: hand-worked values, and the same numbers computed straight from the messages
    solve = sql_solve_rate()
    assert solve == pytest.approx(0.4)
    expect(page.locator("#kpi-conversations")).to_have_text("5")
    expect(page.locator("#kpi-messages_in")).to_have_text("8")
    expect(page.locator("#kpi-bot_solve_rate")).to_have_text(f"{solve * 100:.1f}%")
    assert float(page.locator("#kpi-bot_solve_rate").get_attribute("data-value")) == pytest.approx(solve)
    expect(page.locator("#kpi-bot_solve_detail")).to_have_text("2 / 5")
    expect(page.locator("#kpi-handoff_rate")).to_have_text("20.0%")
    expect(page.locator("#kpi-conversion_rate")).to_have_text("20.0%")
    expect(page.locator("#kpi-csat_average")).to_have_text("4.00")
    p50, p95, p99 = sql_latency()
    expect(page.locator("#kpi-latency")).to_have_text(f"{p50:.1f} / {p95:.1f} / {p99:.1f} ms")
    shown = [float(v) for v in page.locator("#kpi-latency").get_attribute("data-value").split(",")]
    assert shown == pytest.approx([p50, p95, p99])
    expect(page.locator("#kpi-unanswered")).to_have_text("3")

    # tables
    expect(page.locator("#table-faqs td[data-key=hits]")).to_have_text(["3", "1"])
    expect(page.locator("#table-handoff_reasons td[data-key=tickets]")).to_have_text(["1"])
    expect(page.locator("#table-agents td[data-key=agent]")).to_have_text(["小王"])
    expect(page.locator("#table-agents td[data-key=handle_p50]")).to_have_text(["570.0"])
    expect(page.locator("#table-response_times td[data-key=p50]")).to_have_text(["1.0", "32.5", "60.0", "600.0"])
    expect(page.locator("#table-conversion td[data-key=rate]")).to_have_text(["100.0%"])
    expect(page.locator("#table-csat td[data-key=answers]")).to_have_text(["0", "0", "0", "1", "0"])
    expect(page.locator("#table-daily td[data-key=bot_solve_rate]")).to_have_text(["40.0%"])
    href = page.locator("a.export[data-table=agents][data-fmt=xlsx]").get_attribute("href")
    assert href == f"/dashboard/export/agents.xlsx?from={DAY}&to={DAY}"

    # every chart drew something
    for chart in CHARTS:
        assert page.evaluate(DRAWN_PIXELS, chart) > 200, chart

    # filter: the Official Account channel has one conversation, not solved
    page.select_option("select[name=channel]", str(rolled_up.oa.id))
    page.click("#dash-filters button[type=submit]")
    expect(page.locator("#kpi-conversations")).to_have_text("1")
    expect(page.locator("#kpi-bot_solve_rate")).to_have_text("0.0%")
    expect(page.locator("#dashboard")).to_have_attribute("data-state", "ready")
    assert f"channel={rolled_up.oa.id}" in page.url

    assert problems == []  # no script error, no CSP violation


def test_agents_are_refused(page, asgi_server, db):
    user = User.objects.create_user("agent9", password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get_or_create(name="agent")[0])
    login(page, asgi_server, "agent9", PASSWORD)
    response = page.goto(f"{asgi_server}/dashboard/")
    assert response.status == 403


def test_the_rollup_task_refreshes_what_the_page_shows(page, asgi_server, history):
    user = User.objects.create_superuser("root", "r@example.com", PASSWORD)
    assert user
    login(page, asgi_server, "root", PASSWORD)
    page.goto(f"{asgi_server}/dashboard/?from={DAY}&to={DAY}")
    expect(page.locator("#dashboard")).to_have_attribute("data-state", "ready", timeout=15000)
    expect(page.locator("#kpi-conversations")).to_have_text("0")
    expect(page.locator("#table-faqs td.empty")).to_have_count(1)
    services.rollup_day(day=DAY, now=at(48))
    page.click("#dash-filters button[type=submit]")
    expect(page.locator("#kpi-conversations")).to_have_text("5")
