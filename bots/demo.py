from bots.models import Channel, Customer


def seed_channels() -> int:
    channel, created = Channel.objects.get_or_create(
        slug="web", defaults={"kind": Channel.Kind.WEB, "name": "网页渠道 / 模拟器"}
    )
    _, customer_created = Customer.objects.get_or_create(
        channel=channel, external_id="web-demo-customer", defaults={"nickname": "张女士"}
    )
    return int(created) + int(customer_created)
