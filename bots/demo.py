import json
import logging
import secrets

from bots.models import Channel, Customer

logger = logging.getLogger(__name__)


def seed_channels() -> int:
    channel, created = Channel.objects.get_or_create(
        slug="web", defaults={"kind": Channel.Kind.WEB, "name": "网页渠道 / 模拟器"}
    )
    _, customer_created = Customer.objects.get_or_create(
        channel=channel, external_id="web-demo-customer", defaults={"nickname": "张女士"}
    )
    return int(created) + int(customer_created) + int(_seed_bridge())


def _seed_bridge() -> bool:
    """The demo personal-WeChat bridge at ``/bridge/demo/``. Its HMAC secret is random, made on the first seed
    and kept afterwards (never a fixed development value); set your own with
    ``manage.py channel_add --kind bridge --slug demo --secret … --send-url …``."""
    channel, created = Channel.objects.get_or_create(
        slug="demo",
        defaults={
            "kind": Channel.Kind.BRIDGE,
            "name": "演示个人微信（桥接）",
            "settings": {"rate_per_hour": 200, "group_mode": "mention"},
            "secrets": json.dumps({"secret": secrets.token_urlsafe(32)}),
        },
    )
    if created:
        logger.info("demo bridge channel created at /bridge/demo/ with a random secret")
    elif channel.kind == Channel.Kind.BRIDGE and not json.loads(channel.secrets or "{}").get("secret"):
        channel.secrets = json.dumps({**json.loads(channel.secrets or "{}"), "secret": secrets.token_urlsafe(32)})
        channel.save(update_fields=["secrets", "updated_at"])
        return True
    return created
