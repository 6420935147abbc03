import re

from django.core.management.base import BaseCommand, CommandError, no_translations

from bots.models import Channel
from bots.services.channels import channel_upsert, webhook_path
from core.errors import ApplicationError

# command-line flag → setting / secret key (secrets: token, aes_key, app_secret, secret, gewe_token)
OPTIONS = {
    "token": "token",
    "aes_key": "aes_key",
    "app_id": "app_id",
    "app_secret": "app_secret",
    "corp_id": "corp_id",
    "secret": "secret",
    "open_kfid": "open_kfid",
    "send_url": "send_url",
    "send_format": "send_format",
    "group_mode": "group_mode",
    "bot_nickname": "bot_nickname",
    "rate_per_hour": "rate_per_hour",
    "min_gap": "min_gap_seconds",
    "max_gap": "max_gap_seconds",
    "passive_budget": "passive_budget",
    "api_base": "api_base",
}


class Command(BaseCommand):
    help = (
        "Create a channel, or update the one with the same slug (idempotent). Secrets (token, AES key, app "
        "secret, shared secret) are stored encrypted; everything else goes into the channel settings."
    )

    def add_arguments(self, parser):
        parser.add_argument("--kind", required=True, choices=Channel.Kind.values)
        parser.add_argument("--slug", required=True, help="URL name: /wechat/oa/SLUG/, /wechat/kf/SLUG/, /bridge/SLUG/")
        parser.add_argument("--name", help="display name (default: the slug)")
        parser.add_argument("--token", help="oa, kf: the callback Token")
        parser.add_argument("--aes-key", help="oa (safe mode), kf: the 43-character EncodingAESKey")
        parser.add_argument("--app-id", help="oa: AppID (wx…)")
        parser.add_argument("--app-secret", help="oa: AppSecret")
        parser.add_argument("--corp-id", help="kf: CorpID (ww…)")
        parser.add_argument(
            "--secret", help="kf: the 微信客服 Secret; bridge: the HMAC shared secret (random if omitted)"
        )
        parser.add_argument("--open-kfid", help="kf: default customer-service account (wk…)")
        parser.add_argument("--send-url", help="bridge: URL replies are POSTed to")
        parser.add_argument("--send-format", help="bridge: native (default), gewechat or wcferry")
        parser.add_argument("--group-mode", help="bridge: mention (default), all or ignore")
        parser.add_argument("--bot-nickname", help="bridge: our nickname, stripped from @-mentions")
        parser.add_argument("--rate-per-hour", type=int, help="messages per hour this account may send (default 200)")
        parser.add_argument(
            "--min-gap", type=float, help="bridge: least seconds between two sends of the account (default 1; 0 = none)"
        )
        parser.add_argument(
            "--max-gap", type=float, help="bridge: most seconds between two sends (default 3 × the least)"
        )
        parser.add_argument("--passive-budget", type=float, help="oa: seconds to wait for a passive reply (0-4.5)")
        parser.add_argument("--api-base", help="oa, kf: API base URL (default: WECHAT_API_BASE / WECOM_API_BASE)")
        state = parser.add_mutually_exclusive_group()
        state.add_argument("--enable", dest="enabled", action="store_const", const=True, help="enable the channel")
        state.add_argument("--disable", dest="enabled", action="store_const", const=False, help="disable the channel")

    @no_translations  # operators type English flags; messages name them
    def handle(self, *args, **options):
        values = {key: options.get(flag) for flag, key in OPTIONS.items()}
        try:
            saved = channel_upsert(
                kind=options["kind"],
                slug=options["slug"],
                name=options.get("name"),
                values=values,
                enabled=options.get("enabled"),
            )
        except ApplicationError as exc:
            raise CommandError(_flags(exc.message)) from None
        channel = saved.channel
        if saved.created:
            self.stdout.write(f"created channel {channel.slug} ({channel.kind})")
        elif saved.changed:
            self.stdout.write(f"updated channel {channel.slug} ({channel.kind}): {', '.join(saved.changed)}")
        else:
            self.stdout.write(f"updated channel {channel.slug} ({channel.kind}): no changes")
        path = webhook_path(channel)
        if path:
            self.stdout.write(f"webhook: {path}")
        if saved.generated_secret:
            self.stdout.write(f"generated shared secret (shown once): {saved.generated_secret}")
        if channel.kind == Channel.Kind.BRIDGE and not channel.settings.get("send_url"):
            self.stderr.write("warning: no --send-url yet; replies stay in the outbox until one is set")


_FLAG_OF = {key: flag for flag, key in OPTIONS.items()}
_KEYS = re.compile(r"(?<![\w-])(" + "|".join(sorted(OPTIONS.values(), key=len, reverse=True)) + r")(?![\w-])")


def _flags(message: str) -> str:
    """Service messages name settings (aes_key); say them as the flags the operator typed (--aes-key)."""
    return _KEYS.sub(lambda match: "--" + _FLAG_OF[match.group(1)].replace("_", "-"), message)
