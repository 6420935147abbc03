"""Creating and configuring channels (``manage.py channel_add`` and the admin share these rules).

A channel keeps non-secret settings in ``Channel.settings`` (JSON) and its secrets (token, EncodingAESKey,
AppSecret, shared or 微信客服 secret) in ``Channel.secrets``, an encrypted JSON text. Which keys a kind takes,
and which it needs, is declared once in ``KIND_KEYS`` / ``KIND_REQUIRED``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
import secrets as pysecrets
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_slug
from django.db import transaction
from django.utils.translation import gettext as _

from bots import ratelimit
from bots.channels.bridge import GROUP_MODES, SEND_FORMATS
from bots.models import Channel
from core.errors import ApplicationError

SECRET_KEYS = frozenset({"token", "aes_key", "app_secret", "secret", "gewe_token"})
DEFAULT_RATE_PER_HOUR = 200
MAX_GAP_SECONDS = 600  # a random gap between two messages of a personal account (bridge): 0 = none

_COMMON = ("rate_per_hour",)
KIND_KEYS: dict[str, tuple[str, ...]] = {
    Channel.Kind.OA: (*_COMMON, "token", "aes_key", "app_id", "app_secret", "api_base", "passive_budget", "kf_account"),
    Channel.Kind.KF: (*_COMMON, "token", "aes_key", "corp_id", "secret", "api_base", "open_kfid"),
    Channel.Kind.BRIDGE: (
        *_COMMON,
        "secret",
        "send_url",
        "send_format",
        "group_mode",
        "bot_nickname",
        "gewe_token",
        "gewe_app_id",
        "min_gap_seconds",
        "max_gap_seconds",
    ),
    Channel.Kind.WEB: _COMMON,
}
KIND_REQUIRED: dict[str, tuple[str, ...]] = {
    Channel.Kind.OA: ("token", "app_id", "app_secret"),
    Channel.Kind.KF: ("token", "aes_key", "corp_id", "secret"),
    Channel.Kind.BRIDGE: ("secret",),
    Channel.Kind.WEB: (),
}

_AES_KEY = re.compile(r"^[A-Za-z0-9+/]{43}$")
_TOKEN = re.compile(r"^\S{1,128}$")
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclasses.dataclass(frozen=True)
class ChannelSaved:
    channel: Channel
    created: bool
    changed: tuple[str, ...]  # keys (and "name"/"enabled") whose value changed; secrets by name only
    generated_secret: str = ""  # set when a bridge got a random shared secret


def channel_secrets(channel: Channel) -> dict[str, Any]:
    return json.loads(channel.secrets) if channel.secrets else {}


def _invalid(message: str, code: str = "invalid_channel") -> ApplicationError:
    return ApplicationError(message, code=code)


def _seconds(key: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _invalid(_("%(key)s must be a number of seconds") % {"key": key}) from None


def setting_clean(key: str, value: Any) -> Any:
    """One setting or secret, validated and normalised. Raises ``ApplicationError``."""
    if key == "aes_key":
        value = str(value).strip()
        if not _AES_KEY.match(value):
            raise _invalid(_("%(key)s (EncodingAESKey) must be exactly 43 letters and digits") % {"key": key})
        try:
            if len(base64.b64decode(value + "=")) != 32:
                raise ValueError
        except (binascii.Error, ValueError):
            raise _invalid(_("%(key)s (EncodingAESKey) is not valid base64 for a 32-byte key") % {"key": key}) from None
        return value
    if key == "rate_per_hour":
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise _invalid(_("%(key)s must be a whole number") % {"key": key}) from None
        if number < 0:
            raise _invalid(_("%(key)s must be 0 (no hourly limit) or more") % {"key": key})
        if number == 0 and not ratelimit.unlimited_allowed():
            raise _invalid(
                _("%(key)s 0 (no hourly limit) is refused in production unless KEFU_ALLOW_UNLIMITED_SENDING is set")
                % {"key": key}
            )
        return number
    if key in ("min_gap_seconds", "max_gap_seconds"):
        number = _seconds(key, value)
        if not 0 <= number <= MAX_GAP_SECONDS:
            raise _invalid(_("%(key)s must be between 0 and %(most)s seconds") % {"key": key, "most": MAX_GAP_SECONDS})
        return number
    if key == "passive_budget":
        number = _seconds(key, value)
        if not 0 <= number <= 4.5:
            raise _invalid(_("%(key)s must be between 0 and 4.5 seconds (WeChat waits 5)") % {"key": key})
        return number
    if key in ("send_url", "api_base"):
        value = str(value).strip()
        try:
            URLValidator(schemes=["http", "https"])(value)
        except ValidationError:
            raise _invalid(_("%(key)s must be an http(s) URL") % {"key": key}) from None
        return value.rstrip("/") if key == "api_base" else value
    if key == "send_format":
        if value not in SEND_FORMATS:
            raise _invalid(_("%(key)s must be one of %(choices)s") % {"key": key, "choices": ", ".join(SEND_FORMATS)})
        return value
    if key == "group_mode":
        if value not in GROUP_MODES:
            raise _invalid(_("%(key)s must be one of %(choices)s") % {"key": key, "choices": ", ".join(GROUP_MODES)})
        return value
    if key in ("app_id", "corp_id", "open_kfid", "gewe_app_id"):
        value = str(value).strip()
        if not _ID.match(value):
            raise _invalid(_("%(key)s must be letters, digits, '_' or '-' (at most 64)") % {"key": key})
        if key == "app_id" and not value.startswith("wx"):
            raise _invalid(_("%(key)s must be the Official Account AppID (starts with wx)") % {"key": key})
        return value
    if key in ("token", "app_secret", "secret", "gewe_token"):
        value = str(value).strip()
        if not _TOKEN.match(value):
            raise _invalid(_("%(key)s must be 1 to 128 characters without spaces") % {"key": key})
        if key == "secret" and len(value) < 16:
            raise _invalid(_("%(key)s must be at least 16 characters") % {"key": key})
        return value
    return str(value).strip()


def channel_validate(*, kind: str, settings: dict[str, Any], secrets: dict[str, Any]) -> None:
    """Check a channel's merged configuration: required keys present, AppID given for safe mode."""
    config = {**settings, **secrets}
    missing = [key for key in KIND_REQUIRED[kind] if not config.get(key)]
    if missing:
        raise _invalid(
            _("a %(kind)s channel needs %(keys)s") % {"kind": kind, "keys": ", ".join(missing)}, "missing_setting"
        )
    low, high = config.get("min_gap_seconds"), config.get("max_gap_seconds")
    if low not in (None, "") and high not in (None, "") and float(high) < float(low):
        raise _invalid(_("%(max)s must not be below %(min)s") % {"max": "max_gap_seconds", "min": "min_gap_seconds"})
    if kind == Channel.Kind.OA and config.get("aes_key") and not config.get("app_id"):
        raise _invalid(
            _("safe mode (%(aes_key)s) needs %(app_id)s, the receive id of the encryption")
            % {"aes_key": "aes_key", "app_id": "app_id"},
            "missing_setting",
        )


@transaction.atomic
def channel_upsert(
    *, kind: str, slug: str, name: str | None = None, values: dict[str, Any], enabled: bool | None = None
) -> ChannelSaved:
    """Create the channel ``slug`` or update it in place (same slug: update; the kind cannot change).

    ``values`` maps setting or secret keys to new values; ``None`` means "leave as it is". Secrets go to the
    encrypted ``secrets`` JSON, everything else to ``settings``. A new bridge without a secret gets a random one
    (returned once in ``generated_secret``). Raises ``ApplicationError`` with a clear message.
    """
    if kind not in KIND_KEYS:
        raise _invalid(
            _("unknown kind %(kind)s; use one of %(choices)s") % {"kind": kind, "choices": ", ".join(KIND_KEYS)}
        )
    try:
        validate_slug(slug)
    except ValidationError:
        raise _invalid(_("The slug must be letters, digits, '-' or '_'.")) from None
    if len(slug) > 64:
        raise _invalid(_("The slug must be at most 64 characters."))
    given = {key: value for key, value in values.items() if value is not None}
    foreign = sorted(set(given) - set(KIND_KEYS[kind]))
    if foreign:
        raise _invalid(
            _("%(keys)s does not apply to a %(kind)s channel") % {"keys": ", ".join(foreign), "kind": kind},
            "wrong_setting",
        )
    cleaned = {key: setting_clean(key, value) for key, value in given.items()}
    if name is not None and not (name := name.strip()):
        raise _invalid(_("The name cannot be empty."))

    channel = Channel.objects.select_for_update().filter(slug=slug).first()
    created = channel is None
    if channel is not None and channel.kind != kind:
        raise _invalid(
            _("Channel %(slug)s exists with kind %(kind)s; its kind cannot change.")
            % {"slug": slug, "kind": channel.kind},
            "kind_change",
        )
    if channel is None:
        channel = Channel(kind=kind, slug=slug, name=name or slug, settings={}, secrets="")
    old_settings, old_secrets = dict(channel.settings or {}), channel_secrets(channel)
    new_settings, new_secrets = dict(old_settings), dict(old_secrets)
    for key, value in cleaned.items():
        (new_secrets if key in SECRET_KEYS else new_settings)[key] = value
    if created:
        new_settings.setdefault("rate_per_hour", DEFAULT_RATE_PER_HOUR)
    generated = ""
    if kind == Channel.Kind.BRIDGE and not new_secrets.get("secret"):
        generated = new_secrets["secret"] = pysecrets.token_urlsafe(32)
    channel_validate(kind=kind, settings=new_settings, secrets=new_secrets)

    changed = [
        key for key in sorted(set(new_settings) | set(old_settings)) if new_settings.get(key) != old_settings.get(key)
    ]
    changed += [
        key for key in sorted(set(new_secrets) | set(old_secrets)) if new_secrets.get(key) != old_secrets.get(key)
    ]
    if name is not None and name != channel.name:
        changed.append("name")
        channel.name = name
    if enabled is not None and enabled != channel.enabled:
        changed.append("enabled")
        channel.enabled = enabled
    if created or changed:
        channel.settings = new_settings
        channel.secrets = json.dumps(new_secrets, ensure_ascii=False, sort_keys=True) if new_secrets else ""
        channel.save()
    return ChannelSaved(channel=channel, created=created, changed=tuple(changed), generated_secret=generated)


def webhook_path(channel: Channel) -> str:
    """The path WeChat, WeCom or the bridge must call for ``channel`` (empty for the web channel)."""
    prefix = {Channel.Kind.OA: "/wechat/oa/", Channel.Kind.KF: "/wechat/kf/", Channel.Kind.BRIDGE: "/bridge/"}
    return f"{prefix[channel.kind]}{channel.slug}/" if channel.kind in prefix else ""
