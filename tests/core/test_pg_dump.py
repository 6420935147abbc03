"""Encryption at rest, end to end: a pg_dump after a real conversation holds none of its plaintext."""

import os
import subprocess

import pytest
from django.db import connection

from bots import services
from bots.channels.base import InboundMessage
from bots.models import Message


@pytest.mark.django_db(transaction=True)
def test_pg_dump_after_a_conversation_contains_no_plaintext(celery_worker, web_channel, greeting_rule):
    from tests.conftest import wait_for

    secret_text = "我的手机号是13912345678住在幸福路88号"
    services.message_receive(
        channel=web_channel,
        inbound=InboundMessage(
            external_id="dump-1", sender_id="c-dump", type="text", text=secret_text, nickname="赵六"
        ),
    )
    services.message_receive(
        channel=web_channel,
        inbound=InboundMessage(external_id="dump-2", sender_id="c-dump", type="text", text="你好"),
    )
    wait_for(lambda: Message.objects.filter(direction="out", status="sent").count() == 2)
    db = connection.settings_dict
    dump = subprocess.run(
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
    assert "bots_message" in dump  # the dump really has the table data
    for plaintext in ("13912345678", "幸福路", "赵六"):
        assert plaintext not in dump, plaintext
