"""``manage.py channel_add``: idempotent, validating, secrets encrypted; the demo bridge; adapter_config."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import time

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from bots import ratelimit
from bots.models import Channel, adapter_config, channel_config

pytestmark = pytest.mark.django_db

AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("channel_add", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def oa_args(**overrides: str) -> list[str]:
    options = {
        "--kind": "oa",
        "--slug": "shop-oa",
        "--name": "优选好物商城",
        "--token": "kefuOaToken2026",
        "--aes-key": AES_KEY,
        "--app-id": "wx5823bf96d3bd56c7",
        "--app-secret": "oa-app-secret-0123456789",
    }
    options.update(overrides)
    return [item for pair in options.items() for item in pair]


def test_create_then_update_the_same_slug():
    out = run(*oa_args())
    assert "created channel shop-oa (oa)" in out
    assert "/wechat/oa/shop-oa/" in out
    channel = Channel.objects.get(slug="shop-oa")
    assert channel.name == "优选好物商城"
    assert channel.settings == {"app_id": "wx5823bf96d3bd56c7", "rate_per_hour": 200}
    assert json.loads(channel.secrets) == {
        "token": "kefuOaToken2026",
        "aes_key": AES_KEY,
        "app_secret": "oa-app-secret-0123456789",
    }
    # the same command again: updated, nothing changes
    assert "updated channel shop-oa (oa): no changes" in run(*oa_args())
    assert Channel.objects.count() == 1
    # change one thing; the other values stay
    out = run("--kind", "oa", "--slug", "shop-oa", "--rate-per-hour", "50", "--token", "newToken2027")
    assert "updated channel shop-oa (oa): rate_per_hour, token" in out
    config = channel_config(Channel.objects.get(slug="shop-oa"))
    assert config["rate_per_hour"] == 50 and config["token"] == "newToken2027" and config["aes_key"] == AES_KEY


def test_secrets_are_encrypted_at_rest():
    run(*oa_args())
    with connection.cursor() as cursor:
        cursor.execute("SELECT secrets, settings::text FROM bots_channel WHERE slug = 'shop-oa'")
        secrets, settings = cursor.fetchone()
    assert secrets.startswith("kefu1$") and "oa-app-secret" not in secrets and AES_KEY not in secrets
    assert "oa-app-secret" not in settings and "kefuOaToken2026" not in settings


def test_kf_and_bridge_and_web():
    run(
        "--kind", "kf", "--slug", "kf", "--token", "kfToken", "--aes-key", AES_KEY,
        "--corp-id", "ww3f8a2c91d0b7e456", "--secret", "kf-secret-0123456789abcdef",
    )  # fmt: skip
    kf = channel_config(Channel.objects.get(slug="kf"))
    assert kf["corp_id"] == "ww3f8a2c91d0b7e456" and kf["secret"] == "kf-secret-0123456789abcdef"
    out = run("--kind", "bridge", "--slug", "wx-shop", "--send-url", "http://127.0.0.1:9999/send")
    assert "generated shared secret" in out
    bridge = channel_config(Channel.objects.get(slug="wx-shop"))
    assert len(bridge["secret"]) >= 32 and bridge["send_url"] == "http://127.0.0.1:9999/send"
    assert "generated" not in run("--kind", "bridge", "--slug", "wx-shop")  # kept, not regenerated
    assert channel_config(Channel.objects.get(slug="wx-shop"))["secret"] == bridge["secret"]
    assert "created channel site (web)" in run("--kind", "web", "--slug", "site")
    run("--kind", "web", "--slug", "site", "--disable")
    assert Channel.objects.get(slug="site").enabled is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (oa_args(**{"--aes-key": "short"}), "--aes-key"),
        (oa_args(**{"--aes-key": "!" * 43}), "43"),
        (["--kind", "oa", "--slug", "x"], "needs --token, --app-id, --app-secret"),
        (["--kind", "kf", "--slug", "x", "--token", "t"], "needs --aes-key, --corp-id, --secret"),
        (oa_args(**{"--corp-id": "ww1"}), "--corp-id does not apply to a oa channel"),
        (["--kind", "web", "--slug", "x", "--send-url", "http://a.example/"], "--send-url does not apply"),
        (["--kind", "bridge", "--slug", "x", "--send-url", "ftp://bridge"], "--send-url must be an http(s) URL"),
        (["--kind", "bridge", "--slug", "x", "--secret", "short"], "at least 16"),
        (["--kind", "bridge", "--slug", "has space"], "slug"),
        (["--kind", "bridge", "--slug", "x", "--rate-per-hour", "-1"], "--rate-per-hour"),
        (oa_args(**{"--passive-budget": "6"}), "4.5"),
        (oa_args(**{"--app-id": "gh_123"}), "--app-id"),
        (["--kind", "bridge", "--slug", "x", "--min-gap", "-1"], "--min-gap must be between 0 and 600"),
        (
            ["--kind", "bridge", "--slug", "x", "--min-gap", "5", "--max-gap", "2"],
            "--max-gap must not be below --min-gap",
        ),
        (oa_args(**{"--min-gap": "2"}), "--min-gap does not apply to a oa channel"),
    ],
)
def test_invalid_input_is_a_clear_command_error_and_stores_nothing(args, message):
    with pytest.raises(CommandError) as excinfo:
        run(*args)
    assert message in str(excinfo.value)
    assert not Channel.objects.exists()


def test_the_kind_of_an_existing_slug_cannot_change():
    run(*oa_args())
    with pytest.raises(CommandError, match="kind cannot change"):
        run("--kind", "bridge", "--slug", "shop-oa")
    assert Channel.objects.get(slug="shop-oa").kind == "oa"


def test_adapter_config_defaults_the_api_base_from_settings(settings):
    settings.WECHAT_API_BASE = "http://127.0.0.1:1/wechat"
    settings.WECOM_API_BASE = "http://127.0.0.1:1/wecom"
    run(*oa_args())
    assert adapter_config(Channel.objects.get(slug="shop-oa"))["api_base"] == "http://127.0.0.1:1/wechat"
    run("--kind", "oa", "--slug", "shop-oa", "--api-base", "http://fake.local:8080/")
    assert adapter_config(Channel.objects.get(slug="shop-oa"))["api_base"] == "http://fake.local:8080"
    run(
        "--kind", "kf", "--slug", "kf", "--token", "kfToken", "--aes-key", AES_KEY,
        "--corp-id", "ww3f8a2c91d0b7e456", "--secret", "kf-secret-0123456789abcdef",
    )  # fmt: skip
    assert adapter_config(Channel.objects.get(slug="kf"))["api_base"] == "http://127.0.0.1:1/wecom"
    run("--kind", "bridge", "--slug", "b", "--secret", "s" * 32)
    assert "api_base" not in adapter_config(Channel.objects.get(slug="b"))


def test_the_demo_seed_creates_a_working_demo_bridge_with_a_random_secret_once(client, redis_clean):
    from bots.demo import seed_channels

    seed_channels()
    demo = Channel.objects.get(slug="demo")
    first = channel_config(demo)["secret"]
    assert demo.kind == "bridge" and demo.enabled and len(first) >= 32
    assert seed_channels() == 0  # idempotent: nothing created, nothing saved
    assert channel_config(Channel.objects.get(slug="demo"))["secret"] == first
    assert Channel.objects.get(slug="demo").updated_at == demo.updated_at
    # /bridge/demo/ answers a request signed with that secret
    body = json.dumps({"id": "demo-1", "from": "wxid_demo", "text": "你好"}).encode()
    timestamp = str(int(time.time()))
    signature = hmac.new(first.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    response = client.post(
        "/bridge/demo/",
        data=body,
        content_type="application/json",
        HTTP_X_KEFU_TIMESTAMP=timestamp,
        HTTP_X_KEFU_SIGNATURE=signature,
    )
    assert response.json() == {"ok": True, "received": 1, "duplicates": 0}


def test_the_demo_bridge_secret_differs_between_installations(redis_clean):
    from bots.demo import seed_channels

    seed_channels()
    first = channel_config(Channel.objects.get(slug="demo"))["secret"]
    Channel.objects.filter(slug="demo").delete()
    seed_channels()
    assert channel_config(Channel.objects.get(slug="demo"))["secret"] != first


def test_admin_secrets_are_write_only_and_blank_keeps_them(admin_client):
    run(*oa_args())
    channel = Channel.objects.get(slug="shop-oa")
    url = f"/admin/bots/channel/{channel.pk}/change/"
    page = admin_client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "oa-app-secret-0123456789" not in html and AES_KEY not in html and "kefuOaToken2026" not in html
    assert "/wechat/oa/shop-oa/" in html
    form = {
        "slug": "shop-oa",
        "name": "新名字",
        "enabled": "on",
        "settings": json.dumps(channel.settings),
        "token": "",
        "aes_key": "",
        "app_secret": "rotated-app-secret-99",
        "secret": "",
        "gewe_token": "",
        "cursors-TOTAL_FORMS": "0",
        "cursors-INITIAL_FORMS": "0",
        "cursors-MIN_NUM_FORMS": "0",
        "cursors-MAX_NUM_FORMS": "1000",
    }
    response = admin_client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    config = channel_config(Channel.objects.get(pk=channel.pk))
    assert config["app_secret"] == "rotated-app-secret-99"
    assert config["token"] == "kefuOaToken2026" and config["aes_key"] == AES_KEY  # blank kept them
    assert Channel.objects.get(pk=channel.pk).name == "新名字"
    # a bad AES key is a form error, nothing saved
    response = admin_client.post(url, {**form, "aes_key": "short"})
    assert response.status_code == 200
    assert channel_config(Channel.objects.get(pk=channel.pk))["aes_key"] == AES_KEY


def test_bridge_gaps_between_sends_are_set_and_used_by_the_limiter():
    run("--kind", "bridge", "--slug", "gap", "--min-gap", "2", "--max-gap", "5")
    channel = Channel.objects.get(slug="gap")
    assert (channel.settings["min_gap_seconds"], channel.settings["max_gap_seconds"]) == (2.0, 5.0)
    limits = ratelimit.limits_for(channel.kind, channel.settings)
    assert (limits.min_gap, limits.max_gap) == (2.0, 5.0)
    assert "max_gap_seconds" in run("--kind", "bridge", "--slug", "gap", "--max-gap", "8")
    assert ratelimit.limits_for("bridge", Channel.objects.get(slug="gap").settings).max_gap == 8.0
    run("--kind", "bridge", "--slug", "gap", "--min-gap", "0", "--max-gap", "0")  # no gap at all
    limits = ratelimit.limits_for("bridge", Channel.objects.get(slug="gap").settings)
    assert (limits.min_gap, limits.max_gap) == (0.0, 0.0)
