"""The dashboard page, its JSON API and the exports: who may see them, filters, formats, no inline script."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth.models import Group, User
from openpyxl import load_workbook

from analytics.models import DailyStats
from core.models import AuditLog
from tests.analytics.conftest import DAY, EXPECTED
from tests.security.test_headers import inline_script_problems

pytestmark = pytest.mark.django_db

Q = {"from": DAY.isoformat(), "to": DAY.isoformat()}


def user_in(group: str | None, name: str | None = None, **extra) -> User:
    user = User.objects.create_user(name or f"u-{group}", password="pw-long-enough-1", **extra)
    if group:
        Group.objects.get_or_create(name=group)[0].user_set.add(user)
    return user


@pytest.fixture
def operator_client(client):
    client.force_login(user_in("operator", is_staff=True))
    return client


@pytest.mark.parametrize(("group", "status"), [("operator", 200), ("supervisor", 200), ("agent", 403), (None, 403)])
def test_who_may_see_the_dashboard(client, group, status):
    client.force_login(user_in(group))
    assert client.get("/dashboard/").status_code == status
    assert client.get("/api/v1/analytics/dashboard/").status_code == status
    assert client.get("/dashboard/export/daily.csv").status_code == status


def test_anonymous_visitors_log_in_first(client):
    response = client.get("/dashboard/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert client.get("/api/v1/analytics/dashboard/").status_code in (401, 403)


def test_the_permission_alone_opens_it(client):
    from django.contrib.auth.models import Permission

    user = user_in(None, "analyst")
    user.user_permissions.add(Permission.objects.get(codename="view_dashboard"))
    client.force_login(user)
    assert client.get("/dashboard/").status_code == 200


def test_page_loads_echarts_from_static_and_has_no_inline_script(operator_client, rolled_up):
    response = operator_client.get("/dashboard/")
    html = response.content.decode()
    assert inline_script_problems(html) == []
    assert "/static/vendor/echarts/echarts.min.js" in html and "/static/js/dashboard.js" in html
    assert "cdn" not in html.lower()
    assert 'id="dashboard-tables" type="application/json"' in html
    assert f'value="{rolled_up.oa.id}"' in html  # the channel filter lists the channels


def test_dashboard_api_returns_every_panel(operator_client, rolled_up):
    data = operator_client.get("/api/v1/analytics/dashboard/", Q).json()
    for key, value in EXPECTED.items():
        assert data["summary"][key] == pytest.approx(value), key
    assert data["filters"] == {"from": "2026-03-10", "to": "2026-03-10", "channel": None, "group": None}
    for panel in (
        "daily",
        "response_times",
        "handoff_reasons",
        "conversion",
        "intents",
        "faqs",
        "unanswered",
        "csat",
        "agents",
        "segments",
        "latency",
    ):
        assert panel in data, panel
    assert data["latency"]["p50"] == pytest.approx(12.0)
    assert data["daily"] == [
        {
            "day": "2026-03-10",
            "conversations": 5,
            "messages_in": 8,
            "messages_out": 9,
            "ended": 5,
            "bot_solved": 2,
            "bot_solve_rate": 0.4,
            "handed_off": 1,
            "converted": 1,
            "unanswered": 3,
        }
    ]


def test_one_table(operator_client, rolled_up):
    data = operator_client.get("/api/v1/analytics/tables/faqs/", Q).json()
    assert [c["key"] for c in data["columns"]] == ["question", "faq_id", "hits"]
    assert [(r["faq_id"], r["hits"]) for r in data["rows"]] == [(1, 3), (3, 1)]
    assert operator_client.get("/api/v1/analytics/tables/nope/", Q).status_code == 404


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2026-03-10", "to": "2026-03-01"},
        {"from": "2024-01-01", "to": "2026-03-01"},
        {"from": "yesterday"},
        {"channel": "abc"},
        {"group": "0"},
        {"channel": str(2**70)},
        {"to": "0001-01-01"},
    ],
)
def test_bad_filters_are_a_400_with_a_message(operator_client, params):
    response = operator_client.get("/api/v1/analytics/dashboard/", params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] in ("invalid_filters",)
    assert operator_client.get("/dashboard/export/daily.csv", params).status_code == 400


def test_csv_export(operator_client, rolled_up):
    response = operator_client.get("/dashboard/export/daily.csv", Q)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="kefu-daily-20260310-20260310.csv"' in response["Content-Disposition"]
    text = response.content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][0] == "日期" or rows[0][0] == "day"
    assert rows[1][:3] == ["2026-03-10", "5", "8"]
    entry = AuditLog.objects.filter(action="export").latest("id")
    assert entry.target_model == "analytics.daily" and entry.after["rows"] == 1


def test_xlsx_export_of_every_table(operator_client, rolled_up):
    from analytics.selectors import TABLES

    for name, table in TABLES.items():
        response = operator_client.get(f"/dashboard/export/{name}.xlsx", Q)
        assert response.status_code == 200, name
        sheet = load_workbook(io.BytesIO(response.content)).active
        values = list(sheet.values)
        assert len(values[0]) == len(table.columns), name
    sheet = load_workbook(io.BytesIO(operator_client.get("/dashboard/export/agents.xlsx", Q).content)).active
    assert list(sheet.values)[1][:3] == ("小王", 1, 1)
    assert operator_client.get("/dashboard/export/daily.pdf", Q).status_code == 404


def test_customer_text_cannot_become_a_spreadsheet_formula():
    from analytics.views import _cell

    assert _cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert _cell(["+1", "a"]) == "'+1、a"
    assert _cell(0.123456) == 0.1235


def test_schema_lists_the_analytics_api(operator_client):
    operator_client.force_login(User.objects.create_superuser("root", "r@example.com", "Root-pass-long-1"))
    schema = operator_client.get("/api/schema/?format=json").json()
    assert "/api/v1/analytics/dashboard/" in schema["paths"]


def test_beat_runs_the_rollups_and_the_mining():
    from django.conf import settings

    from config.settings import base

    tasks = {entry["task"] for entry in base.CELERY_BEAT_SCHEDULE.values()}
    assert {
        "analytics.tasks.rollup_recent",
        "analytics.tasks.rollup_nightly",
        "knowledge.tasks.mining_schedule",
    } <= tasks
    assert settings.CELERY_TASK_ROUTES["knowledge.tasks.*"] == {"queue": "ml"}


def test_rollup_tasks_run(history):
    from analytics import tasks

    assert tasks.rollup_recent.run(days=1) == 1
    assert tasks.rollup_nightly.run() == 9


def test_rollup_admin_pages(client, rolled_up):
    client.force_login(User.objects.create_superuser("root", "r@example.com", "Root-pass-long-1"))
    for model in ("dailystats", "dailytopic", "dailyagent"):
        assert client.get(f"/admin/analytics/{model}/").status_code == 200, model
    row = DailyStats.objects.first()
    response = client.post("/admin/analytics/dailystats/", {"action": "rebuild", "_selected_action": [row.pk]})
    assert response.status_code == 302
