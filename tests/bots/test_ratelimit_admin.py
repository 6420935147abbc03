"""Sending limits for operators: used/remaining per account read from the limiter's own Redis log (no double
counting), the 80 % alert once per window (log line, realtime event, admin banner), the production guard against
switching limits off, and the outbox admin's reason column/filter and audited "send again" action."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.utils import translation

from bots import ratelimit, selectors
from bots.models import Channel, Conversation, Customer, Message, Outbox
from bots.ratelimit import AccountLimits, limits_for, slot_acquire, usage_alert
from bots.ratelimit_math import HOUR, alert_threshold, usage_summary
from bots.services import outbound
from bots.services.channels import channel_upsert, setting_clean
from core import realtime
from core.checks import sending_limits_check
from core.errors import ApplicationError
from core.models import AuditLog
from tests.e2e.conftest import asgi_server, browser  # noqa: F401  (daphne and headless Chromium)

ROOT = Path(__file__).resolve().parents[2]
NOW = 1_750_000_000.0


def _bridge(slug: str = "shop", **settings) -> Channel:
    return Channel.objects.create(kind="bridge", slug=slug, name=f"店铺{slug}", settings=settings, secrets="")


def _take(slug: str, count: int, *, limit: int, start: int = 0, window: float = HOUR) -> list:
    limits = AccountLimits(rate_per_hour=limit)
    return [slot_acquire(channel_slug=slug, member=f"m{start + i}", limits=limits, window=window) for i in range(count)]


def _supervisor_events() -> list[dict]:
    return [e for e in realtime.events_since(realtime.SUPERVISORS, 0) if e["event"] == "channel.limit_warning"]


# --- pure maths -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("limit", "threshold"), [(200, 160), (10, 8), (5, 4), (1, 1), (3, 3), (0, 0)])
def test_alert_threshold_is_80_percent_rounded_up(limit, threshold):
    assert alert_threshold(limit) == threshold


def test_usage_summary_counts_past_and_booked_slots_in_the_window():
    slots = [NOW - 4000, NOW - 3000, NOW - 10, NOW, NOW + 50]  # the first left the window
    usage = usage_summary(slots, now=NOW, limit=5)
    assert (usage.used, usage.reserved, usage.taken, usage.remaining, usage.percent) == (3, 1, 4, 1, 80)
    assert usage.alerting
    assert usage.resets_at == pytest.approx(NOW - 3000 + HOUR)
    empty = usage_summary([], now=NOW, limit=0)
    assert (empty.remaining, empty.percent, empty.resets_at, empty.alerting) == (None, None, None, False)


# --- the selector reads the limiter's own log ---------------------------------------------------------------------


@pytest.mark.django_db
def test_usage_is_read_from_the_same_keys_without_changing_them(redis_clean):
    channel = _bridge(rate_per_hour=10, min_gap_seconds=0)
    web = Channel.objects.create(kind="web", slug="site", name="site")
    _take("shop", 3, limit=10)
    before = redis_clean.zrange(ratelimit.log_key("shop"), 0, -1, withscores=True)

    for _ in range(3):  # reading many times counts nothing
        usage = selectors.channel_limits_usage(channels=[channel, web])
    assert (usage[channel.pk].used, usage[channel.pk].remaining, usage[channel.pk].limit) == (3, 7, 10)
    assert usage[web.pk].limit == 0 and usage[web.pk].remaining is None
    assert redis_clean.zrange(ratelimit.log_key("shop"), 0, -1, withscores=True) == before

    # a retry of the same message keeps its slot: still 3
    slot_acquire(channel_slug="shop", member="m0", limits=AccountLimits(rate_per_hour=10))
    assert selectors.channel_limits_usage(channels=[channel])[channel.pk].used == 3


# --- the 80 % alert -------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_crossing_80_percent_alerts_exactly_once_per_window(redis_clean, caplog, django_capture_on_commit_callbacks):
    window = 2.0  # seconds: the alert key lives one window
    with caplog.at_level(logging.WARNING, logger="bots.ratelimit"), django_capture_on_commit_callbacks(execute=True):
        _take("shop", 7, limit=10, window=window)
        assert _supervisor_events() == [] and not redis_clean.exists(ratelimit.alert_key("shop"))
        _take("shop", 5, limit=10, start=7, window=window)  # the 8th crosses 80 %; the 11th and 12th are held
    events = _supervisor_events()
    assert len(events) == 1
    assert events[0]["payload"]["channel"] == "shop"
    assert (events[0]["payload"]["used"], events[0]["payload"]["limit"], events[0]["payload"]["percent"]) == (8, 10, 80)
    assert events[0]["payload"]["message"]
    warnings = [r for r in caplog.records if "sending limit" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING

    time.sleep(window + 0.2)  # the next window: the log emptied, the alert key expired
    with django_capture_on_commit_callbacks(execute=True):
        _take("shop", 9, limit=10, start=100, window=window)
    assert len(_supervisor_events()) == 2


@pytest.mark.django_db
def test_no_alert_below_the_threshold_or_without_a_limit(redis_clean):
    assert not usage_alert(channel_slug="a", taken=159, limit=200)
    assert not usage_alert(channel_slug="a", taken=1000, limit=0)
    assert usage_alert(channel_slug="a", taken=160, limit=200)
    assert not usage_alert(channel_slug="a", taken=199, limit=200)  # same window: once


@pytest.mark.django_db
def test_sends_through_the_outbox_alert_once_and_the_admin_shows_it(
    redis_clean, admin_client, django_capture_on_commit_callbacks
):
    from tests.fakes.wechat_api import FakeWeChat

    with FakeWeChat.start() as fake:
        fake.bridge_secret = "s3cret"
        channel = Channel.objects.create(
            kind="bridge",
            slug="bridge1",
            name="小店微信",
            settings={"send_url": fake.base_url + "/bridge/send", "rate_per_hour": 5, "min_gap_seconds": 0},
            secrets=json.dumps({"secret": "s3cret"}),
        )
        customer = Customer.objects.create(channel=channel, external_id="wxid_1", nickname="张")
        conversation = Conversation.objects.create(customer=customer, channel=channel)
        with django_capture_on_commit_callbacks(execute=True):
            for i in range(5):
                message = outbound.reply_queue(conversation=conversation, text=f"第{i}条")
                outbound.outbox_send(outbox_id=message.outbox.id)
        assert len(fake.bridge_deliveries) == 5
    assert len(_supervisor_events()) == 1  # the 4th of 5 crossed 80 %
    assert _supervisor_events()[0]["payload"]["used"] == 4

    page = admin_client.get("/admin/bots/channel/").content.decode()
    assert "5 / 5" in page and "kefu-limit-alert" in page
    assert 'class="warning"' in page and "bridge1" in page  # the banner (messages framework)
    index = admin_client.get("/admin/").content.decode()
    assert "kefu-limit-alerts" in index and "小店微信" in index
    change = admin_client.get(f"/admin/bots/channel/{channel.pk}/change/").content.decode()
    assert "5 / 5" in change


@pytest.mark.django_db
def test_no_banner_when_no_account_is_near_its_limit(redis_clean, admin_client):
    _bridge(rate_per_hour=10, min_gap_seconds=0)
    _take("shop", 2, limit=10)
    assert "kefu-limit-alerts" not in admin_client.get("/admin/").content.decode()
    page = admin_client.get("/admin/bots/channel/").content.decode()
    assert "2 / 10" in page and "kefu-limit-alert" not in page


@pytest.mark.django_db
def test_limits_api_shows_each_account_and_needs_view_channel(redis_clean):
    from django.contrib.auth.models import Permission
    from rest_framework.test import APIClient

    _bridge(rate_per_hour=10, min_gap_seconds=0)
    Channel.objects.create(kind="web", slug="site", name="site")
    _take("shop", 8, limit=10)
    api = APIClient()
    api.force_authenticate(User.objects.create_superuser("root", "root@example.com", "Root-pass-long-1"))
    rows = {row["channel"]: row for row in api.get("/api/v1/channels/limits/").json()}
    shop = rows["shop"]
    assert (shop["limit"], shop["used"], shop["remaining"], shop["percent"], shop["alert"]) == (10, 8, 2, 80, True)
    assert shop["resets_at"] is not None and shop["available"] is True
    assert (rows["site"]["limit"], rows["site"]["remaining"], rows["site"]["alert"]) == (0, None, False)

    operator = User.objects.create_user("op", password="Op-pass-long-1", is_staff=True)
    operator.user_permissions.add(Permission.objects.get(codename="view_message"))
    api.force_authenticate(operator)
    assert api.get("/api/v1/channels/limits/").status_code == 403
    operator.user_permissions.add(Permission.objects.get(codename="view_channel"))
    api.force_authenticate(User.objects.get(pk=operator.pk))
    assert api.get("/api/v1/channels/limits/").status_code == 200


# --- production guard -------------------------------------------------------------------------------------------


def _check_deploy(**extra: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": "p" * 20 + "-Q7v!x9#Lm2@Zr8$Kt4%Wb6^Yc1&Hn3*",
        "DJANGO_ALLOWED_HOSTS": "kefu.example.com",
        "KEFU_FIELD_KEYS": "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        "KEFU_BLIND_INDEX_KEY": "YmxpbmQtaW5kZXgta2V5LWZvci10ZXN0cy0wMTIzNDU2Nzg5",
        **extra,
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "switch_off", [{"KEFU_RATE_LIMITS_ENABLED": "false"}, {"KEFU_DEFAULT_RATE_PER_HOUR": "0"}], ids=["off", "zero"]
)
def test_production_refuses_to_start_without_limits_unless_overridden(switch_off):
    refused = _check_deploy(**switch_off, KEFU_ALLOW_UNLIMITED_SENDING="false")
    assert refused.returncode != 0
    assert "KEFU_ALLOW_UNLIMITED_SENDING" in refused.stderr
    allowed = _check_deploy(**switch_off, KEFU_ALLOW_UNLIMITED_SENDING="true")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr


def test_system_check_catches_limits_switched_off_after_the_settings_loaded(settings):
    settings.KEFU_ENV = "production"
    settings.KEFU_RATE_LIMITS_ENABLED = True
    settings.KEFU_ALLOW_UNLIMITED_SENDING = False
    assert sending_limits_check() == []
    settings.KEFU_RATE_LIMITS_ENABLED = False
    assert [e.id for e in sending_limits_check()] == ["kefu.E001"]
    settings.KEFU_ALLOW_UNLIMITED_SENDING = True
    assert sending_limits_check() == []
    settings.KEFU_ENV = "local"
    settings.KEFU_ALLOW_UNLIMITED_SENDING = False
    assert sending_limits_check() == []


@pytest.mark.django_db
def test_a_channel_without_hourly_limit_needs_the_override_in_production(settings, admin_client):
    assert setting_clean("rate_per_hour", 0) == 0  # development: allowed (load tests)
    settings.KEFU_ENV = "production"
    settings.KEFU_ALLOW_UNLIMITED_SENDING = False
    with pytest.raises(ApplicationError, match="KEFU_ALLOW_UNLIMITED_SENDING"):
        setting_clean("rate_per_hour", 0)
    with pytest.raises(ApplicationError):
        channel_upsert(kind="web", slug="w", values={"rate_per_hour": 0})
    with pytest.raises(CommandError):
        call_command("channel_add", "--kind", "web", "--slug", "w2", "--rate-per-hour", "0")
    assert not Channel.objects.filter(slug__in=["w", "w2"]).exists()

    response = admin_client.post(
        "/admin/bots/channel/add/",
        {"kind": "web", "slug": "w3", "name": "w3", "enabled": "on", "settings": '{"rate_per_hour": 0}'},
    )
    assert response.status_code == 200 and not Channel.objects.filter(slug="w3").exists()

    # a value stored before the guard still gets a limit at send time
    assert limits_for("bridge", {"rate_per_hour": 0}).rate_per_hour == settings.KEFU_DEFAULT_RATE_PER_HOUR
    settings.KEFU_ALLOW_UNLIMITED_SENDING = True
    assert setting_clean("rate_per_hour", 0) == 0
    assert limits_for("bridge", {"rate_per_hour": 0, "min_gap_seconds": 0}).rate_per_hour == 0


# --- outbox admin -------------------------------------------------------------------------------------------------


def _outbox(channel: Channel, status: str, reason: str = "", n: int = 0) -> Outbox:
    customer, _ = Customer.objects.get_or_create(channel=channel, external_id="wxid_c", defaults={"nickname": "c"})
    conversation = Conversation.objects.filter(customer=customer).first() or Conversation.objects.create(
        customer=customer, channel=channel
    )
    message = Message.objects.create(
        conversation=conversation,
        channel=channel,
        direction=Message.Direction.OUT,
        sender=Message.Sender.BOT,
        type=Message.Type.TEXT,
        content=f"reply {n}",
        status=Message.Status.FAILED,
    )
    return Outbox.objects.create(
        message=message, channel=channel, status=status, reason=reason, attempts=3, idempotency_key=f"k{n}{status}"
    )


@pytest.mark.django_db
def test_outbox_admin_shows_and_filters_reasons_in_chinese(redis_clean, admin_client):
    channel = _bridge(rate_per_hour=10)
    held = _outbox(channel, Outbox.Status.HELD, "rate_limit", 1)
    blocked = _outbox(channel, Outbox.Status.BLOCKED, "outside_48h_window", 2)
    _outbox(channel, Outbox.Status.SENT, "", 3)
    with translation.override("zh-hans"):
        label = outbound.reason_label("outside_48h_window")
    assert label != "Outside the 48-hour customer-service window"  # translated

    page = admin_client.get("/admin/bots/outbox/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert label in page
    filtered = admin_client.get("/admin/bots/outbox/?reason=outside_48h_window").content.decode()
    assert f'href="/admin/bots/outbox/{blocked.pk}/change/' in filtered
    assert f'href="/admin/bots/outbox/{held.pk}/change/' not in filtered
    none = admin_client.get("/admin/bots/outbox/?reason=-").context["cl"].result_list
    assert [o.status for o in none] == [Outbox.Status.SENT]


@pytest.mark.django_db
def test_send_again_action_retries_dead_blocked_failed_and_is_audited(
    redis_clean, admin_client, django_capture_on_commit_callbacks
):
    channel = _bridge(rate_per_hour=10)
    rows = {s: _outbox(channel, s, "x", i) for i, s in enumerate(["dead", "blocked", "failed", "sent", "held"])}
    with django_capture_on_commit_callbacks(execute=False):
        response = admin_client.post(
            "/admin/bots/outbox/",
            {"action": "send_again", "_selected_action": [o.pk for o in rows.values()]},
            follow=True,
        )
    assert response.status_code == 200
    status = dict(Outbox.objects.values_list("pk", "status"))
    assert [status[rows[s].pk] for s in ["dead", "blocked", "failed"]] == ["pending"] * 3
    assert (status[rows["sent"].pk], status[rows["held"].pk]) == ("sent", "held")
    retried = Outbox.objects.get(pk=rows["dead"].pk)
    assert (retried.attempts, retried.reason) == (0, "")
    assert Message.objects.get(pk=retried.message_id).status == Message.Status.PENDING
    summary = AuditLog.objects.get(action="action:send_again", target_pk="")
    assert summary.actor_username == User.objects.get(is_superuser=True).username
    assert summary.after["count"] == 5
    per_row = AuditLog.objects.filter(action="action:send_again", target_pk=str(rows["dead"].pk)).first()
    assert per_row is not None and per_row.before["status"] == "dead" and per_row.after["status"] == "pending"


@pytest.mark.django_db
def test_send_again_needs_change_permission(redis_clean, client):
    from django.contrib.auth.models import Permission

    viewer = User.objects.create_user("viewer", password="Viewer-pass-long-1", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_outbox"))
    client.force_login(viewer)
    row = _outbox(_bridge(), Outbox.Status.DEAD, "max_attempts", 1)
    client.post("/admin/bots/outbox/", {"action": "send_again", "_selected_action": [row.pk]})
    assert Outbox.objects.get(pk=row.pk).status == Outbox.Status.DEAD
    assert not AuditLog.objects.filter(action="action:send_again").exists()


# --- the supervisor's console shows the alert (real Chromium, daphne, Redis) -------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_supervisors_console_shows_the_limit_alert(browser, asgi_server, redis_clean):  # noqa: F811
    from django.contrib.auth.models import Group
    from playwright.sync_api import expect

    password = "browser-test-pass-1"
    boss = User.objects.create_user("boss", password=password)
    Group.objects.get_or_create(name="supervisor")[0].user_set.add(boss)
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    page.goto(f"{asgi_server}/console/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", password)
    page.click("#login-submit")
    page.wait_for_url(f"{asgi_server}/console/")
    expect(page.locator("#ws-status")).to_have_class("status online")
    assert usage_alert(channel_slug="shop-wx", taken=160, limit=200)  # outside a transaction: published at once
    expect(page.locator("#notice")).to_contain_text("shop-wx")
    expect(page.locator("#notice")).to_contain_text("160")
    context.close()
