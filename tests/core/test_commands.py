import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from bots.models import Channel
from knowledge.models import KeywordRule

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_seed_demo_is_idempotent(settings, redis_clean):
    call_command("seed_demo")
    snapshot = (
        list(User.objects.order_by("id").values_list("username", "password", "last_login")),
        list(KeywordRule.objects.order_by("id").values_list("id", "updated_at")),
        list(Channel.objects.order_by("id").values_list("id", "updated_at")),
    )
    assert {u for u, _, _ in snapshot[0]} == {"admin", "operator", "supervisor", "agent1", "agent2", "auditor"}
    assert User.objects.get(username="agent1").check_password(settings.KEFU_DEMO_PASSWORD)
    call_command("seed_demo")
    assert snapshot == (
        list(User.objects.order_by("id").values_list("username", "password", "last_login")),
        list(KeywordRule.objects.order_by("id").values_list("id", "updated_at")),
        list(Channel.objects.order_by("id").values_list("id", "updated_at")),
    )


@pytest.mark.django_db
def test_seed_demo_refuses_the_default_password_in_production(settings):
    settings.KEFU_ENV = "production"
    settings.KEFU_DEMO_PASSWORD = settings.KEFU_DEMO_DEFAULT_PASSWORD
    with pytest.raises(CommandError):
        call_command("seed_demo")
    assert not User.objects.exists()


def test_production_settings_pass_check_deploy():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": "p" * 20 + "-Q7v!x9#Lm2@Zr8$Kt4%Wb6^Yc1&Hn3*",
        "DJANGO_ALLOWED_HOSTS": "kefu.example.com",
        "KEFU_FIELD_KEYS": "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        "KEFU_BLIND_INDEX_KEY": "YmxpbmQtaW5kZXgta2V5LWZvci10ZXN0cy0wMTIzNDU2Nzg5",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
