"""Encryption at rest: key ids, rotation, blind indexes, and a pg_dump that shows no plaintext."""

import pytest
from django.core.management import call_command
from django.db import connection

from bots import services
from bots.channels.base import InboundMessage
from bots.models import Customer, Message
from core import crypto
from core.models import AuditLog

OLD = "k1:" + "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE="
NEW = "k2:" + "YmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmI="


def _raw(table: str, column: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} ORDER BY id")  # noqa: S608
        return [row[0] for row in cursor.fetchall()]


def test_values_carry_their_key_id_and_tampering_is_detected(settings):
    settings.KEFU_FIELD_KEYS = OLD
    token = crypto.keyring().encrypt("你好")
    assert crypto.encrypted_with(token) == "k1"
    assert crypto.keyring().decrypt(token) == "你好"
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(Exception):  # noqa: B017 - AES-GCM raises InvalidTag
        crypto.keyring().decrypt(tampered)


def test_blind_index_is_deterministic_keyed_and_purpose_bound(settings):
    a = crypto.blind_index("13800138000", purpose="phone")
    assert a == crypto.blind_index("13800138000", purpose="phone")
    assert a != crypto.blind_index("13800138000", purpose="name")
    assert "13800138000" not in a
    settings.KEFU_BLIND_INDEX_KEY = "b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXktb3RoZXI="
    assert crypto.blind_index("13800138000", purpose="phone") != a


@pytest.mark.django_db
def test_rotate_keys_reencrypts_everything_and_resumes(settings, web_channel):
    settings.KEFU_FIELD_KEYS = OLD
    for n in range(7):
        services.message_receive(
            channel=web_channel,
            inbound=InboundMessage(external_id=f"r{n}", sender_id=f"c{n}", type="text", text=f"内容{n}", nickname="王"),
        )
    assert {crypto.encrypted_with(v) for v in _raw("bots_message", "content")} == {"k1"}
    settings.KEFU_FIELD_KEYS = f"{NEW},{OLD}"  # new primary first, old kept for decryption
    # a first run over one table is interrupted half-way (simulated: rotate 3 rows by hand)
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, content FROM bots_message ORDER BY id LIMIT 3")
        for pk, value in cursor.fetchall():
            cursor.execute("UPDATE bots_message SET content = %s WHERE id = %s", [crypto.reencrypt(value), pk])
    call_command("rotate_keys", batch_size=2)
    assert {crypto.encrypted_with(v) for v in _raw("bots_message", "content")} == {"k2"}
    rotation = AuditLog.objects.get(action="keys.rotate")  # audited, without any key material
    assert rotation.actor_username.startswith("cli:rotate_keys:") and rotation.after["primary_key_id"] == "k2"
    assert rotation.after["rows_reencrypted"] >= 4
    assert {crypto.encrypted_with(v) for v in _raw("bots_customer", "nickname")} == {"k2"}
    settings.KEFU_FIELD_KEYS = NEW  # the old key can now be dropped
    assert sorted(Message.objects.values_list("content", flat=True)) == [f"内容{n}" for n in range(7)]
    assert set(Customer.objects.values_list("nickname", flat=True)) == {"王"}
