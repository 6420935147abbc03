"""PIPL retention: message content older than KEFU_RETENTION_DAYS is replaced (batched, resumable, counts and
rollups kept) by the service, the `purge_expired` command and the nightly beat task; and a pg_dump holds none of
a customer's phone, address or real name in plaintext."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import subprocess

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from bots.models import Conversation, Customer, Message
from bots.privacy_tasks import purge_expired
from bots.services import privacy
from core.models import AuditLog

pytestmark = pytest.mark.django_db


def _message(conversation, text: str, *, days_old: float) -> Message:
    message = Message.objects.create(
        conversation=conversation,
        channel=conversation.channel,
        direction="in",
        sender="customer",
        content=text,
        status="processed",
        trace={"kind": "answer", "stage": "faq", "faq_id": 3, "query": text},
    )
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - dt.timedelta(days=days_old))
    return message


@pytest.fixture
def conversation(web_channel):
    customer = Customer.objects.create(channel=web_channel, external_id="ret-1", nickname="老王")
    return Conversation.objects.create(customer=customer, channel=web_channel)


def test_purge_replaces_old_content_only_in_resumable_batches(conversation):
    old = [_message(conversation, f"很久以前的消息{i}", days_old=200) for i in range(5)]
    fresh = _message(conversation, "昨天的消息", days_old=1)
    edge = _message(conversation, "差一点过期", days_old=179)
    total = Message.objects.count()

    assert privacy.messages_purge_expired(dry_run=True)["would_purge"] == 5
    assert Message.objects.filter(redacted_at__isnull=False).count() == 0  # a dry run changes nothing

    result = privacy.messages_purge_expired(batch=2)
    assert (result["purged"], result["batches"], result["days"]) == (5, 3, 180)
    placeholder = privacy.placeholder()
    for message in old:
        message.refresh_from_db()
        assert message.content == placeholder and message.redacted_at is not None
        assert message.trace == {"kind": "answer", "stage": "faq", "faq_id": 3}  # counted keys stay, the quote goes
    fresh.refresh_from_db()
    edge.refresh_from_db()
    assert (fresh.content, edge.content) == ("昨天的消息", "差一点过期")
    assert Message.objects.count() == total  # rows (and so every count) stay
    # resumable / idempotent: a second run finds nothing
    assert privacy.messages_purge_expired()["purged"] == 0
    entry = AuditLog.objects.get(action="retention_purge")
    assert entry.actor_username == "retention" and entry.after["purged"] == 5


def test_retention_setting_and_command(conversation):
    _message(conversation, "四十天前", days_old=40)
    _message(conversation, "十天前", days_old=10)
    with override_settings(KEFU_RETENTION_DAYS=30):
        out = io.StringIO()
        call_command("purge_expired", "--dry-run", stdout=out)
        assert "would purge 1 message(s)" in out.getvalue()
        assert purge_expired() == 1  # the nightly task, run in-process
    out = io.StringIO()
    call_command("purge_expired", "--days", "5", stdout=out)
    assert "purged 1 message(s)" in out.getvalue()
    assert not Message.objects.filter(redacted_at__isnull=True).exists()
    with pytest.raises(Exception, match="at least one day"):
        call_command("purge_expired", "--days", "0")


def test_the_nightly_beat_entry_runs_the_purge_task():
    from config.celery import app
    from config.settings import base  # the test settings switch beat off; the product's schedule is here

    entry = base.CELERY_BEAT_SCHEDULE["retention-purge-nightly"]
    assert entry["task"] == "bots.privacy_tasks.purge_expired"
    assert entry["schedule"].hour == {3} and entry["schedule"].minute == {0}  # once a night
    app.loader.import_default_modules()
    assert "bots.privacy_tasks.purge_expired" in app.tasks
    assert settings.KEFU_RETENTION_DAYS == 180


@pytest.mark.django_db(transaction=True)
def test_pg_dump_holds_no_plaintext_pii(web_channel):
    from bots import pii

    phone, address, real_name = "13987654321", "杭州市西湖区龙井路12号", "欧阳娜娜"
    Customer.objects.create(
        channel=web_channel, external_id="dump-pii", nickname="娜娜", phone=phone, address=address, real_name=real_name
    )
    dump = _pg_dump(connection.settings_dict)
    assert "dump-pii" in dump and pii.phone_blind_index(phone) in dump  # the row really is in the dump
    for plaintext in (phone, "1398765", address, "龙井路", real_name, "娜娜"):
        assert plaintext not in dump, plaintext
    assert hashlib.sha256(phone.encode()).hexdigest() not in dump  # the blind index is keyed, not a plain hash


def _pg_dump(db) -> str:
    return subprocess.run(
        [
            "pg_dump",
            "-h",
            db["HOST"] or "127.0.0.1",
            "-p",
            str(db["PORT"] or 5432),
            "-U",
            db["USER"] or "postgres",
            "--data-only",
            db["NAME"],
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, "PGPASSWORD": db["PASSWORD"] or ""},
    ).stdout
