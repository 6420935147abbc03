"""Demo routing data: customers with orders (so tiers, segments and the ``kefu:rfm`` sorted set exist out of
the box), agent groups, agents for the demo users, default routing rules, canned replies. Idempotent."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.utils import timezone

from bots.models import Channel, Customer
from routing.models import AgentGroup, AgentProfile, CannedReply, Order, Priority, RoutingRule
from routing.services import person_for_customer, rfm_recompute

GROUPS = [
    # slug, name, description, default, auto-assign, SLA minutes
    ("vip", "VIP", "高价值客户专属", False, True, 5),
    ("after_sales", "售后", "退换货、物流、质量问题", False, True, 10),
    ("pre_sales", "售前", "商品咨询、下单前问题（在队列中认领）", True, False, 10),
]
AGENTS = [
    # username, display name, groups, capacity
    ("agent1", "小美", ["pre_sales", "after_sales"], 5),
    ("agent2", "小李", ["pre_sales", "vip"], 5),
]
RULES = [
    # position, name, conditions, group, priority, SLA, hands off by itself
    (10, "VIP 客户 → VIP 组", {"tiers": "vip"}, "vip", Priority.HIGH, 5, False),
    (20, "情绪激动 → 售后（高优先级）", {"reasons": "anger"}, "after_sales", Priority.HIGH, 5, False),
    (30, "退款/投诉意图 → 售后", {"intents": "refund, complaint"}, "after_sales", Priority.NORMAL, None, False),
    (
        40,
        "售后关键词 → 售后",
        {"keywords": "退货, 退款, 换货, 破损, 质量, 物流, 快递"},
        "after_sales",
        Priority.NORMAL,
        None,
        False,
    ),
    (50, "提到投诉渠道 → 立即转人工", {"keywords": "12315, 消协, 工商局"}, "after_sales", Priority.URGENT, 3, True),
]
CANNED = [
    ("greet", "问候", "您好，我是客服{agent}，很高兴为您服务，请问有什么可以帮您？", None),
    ("wait", "请稍等", "好的，我这边帮您查询一下，请稍等片刻～", None),
    ("thanks", "感谢", "感谢您的耐心等待，还有其他可以帮您的吗？", None),
    ("refund", "退款流程", "退款申请提交后 1-3 个工作日内原路退回，请留意账户到账通知。", "after_sales"),
    ("vip-gift", "VIP 礼遇", "感谢您一直以来的支持！作为 VIP 客户，本单我们为您优先处理并赠送一份小礼品。", "vip"),
]
# external id, nickname, orders as (days ago, amount); the simulator's demo customer is the best one
CUSTOMERS = [
    ("web-demo-customer", "张女士", [(3, 1299), (20, 899), (41, 2399), (70, 560), (95, 1888), (130, 999)]),
    ("web-demo-rfm-01", "王先生", [(5, 699), (33, 1599), (60, 459), (88, 1299), (150, 799)]),
    ("web-demo-rfm-02", "李小姐", [(12, 299), (45, 189), (100, 259), (160, 199)]),
    ("web-demo-rfm-03", "赵先生", [(2, 3599), (200, 89)]),
    ("web-demo-rfm-04", "陈女士", [(8, 159), (30, 99), (55, 129)]),
    ("web-demo-rfm-05", "刘先生", [(40, 4999)]),
    ("web-demo-rfm-06", "周小姐", [(180, 89), (240, 59)]),
    ("web-demo-rfm-07", "吴先生", [(300, 1999), (330, 2599), (360, 1399)]),
    ("web-demo-rfm-08", "郑女士", [(25, 79)]),
    ("web-demo-rfm-09", "孙先生", [(400, 49)]),
    ("web-demo-rfm-10", "钱小姐", [(15, 399), (50, 459), (75, 329), (110, 289)]),
    ("web-demo-rfm-11", "冯先生", []),
]


def seed_routing() -> int:
    """Create what is missing; returns the number of rows created (0 on a second run)."""
    created = 0
    groups = {}
    for slug, name, description, is_default, auto_assign, sla in GROUPS:
        group, was_created = AgentGroup.objects.get_or_create(
            slug=slug,
            defaults={
                "name": name,
                "description": description,
                "is_default": is_default,
                "auto_assign": auto_assign,
                "sla_minutes": sla,
            },
        )
        groups[slug] = group
        created += was_created
    User = get_user_model()
    for username, display_name, group_slugs, capacity in AGENTS:
        user = User.objects.filter(username=username).first()
        if user is None:
            continue
        profile, was_created = AgentProfile.objects.get_or_create(
            user=user, defaults={"display_name": display_name, "capacity": capacity}
        )
        if was_created:
            profile.groups.set([groups[s] for s in group_slugs])
            created += 1
    for position, name, conditions, group_slug, priority, sla, triggers in RULES:
        _, was_created = RoutingRule.objects.get_or_create(
            name=name,
            defaults={
                "position": position,
                "group": groups[group_slug],
                "priority": priority,
                "sla_minutes": sla,
                "triggers_handoff": triggers,
                **conditions,
            },
        )
        created += was_created
    for shortcut, title, text, group_slug in CANNED:
        _, was_created = CannedReply.objects.get_or_create(
            shortcut=shortcut, defaults={"title": title, "text": text, "group": groups.get(group_slug)}
        )
        created += was_created
    created += _seed_customers()
    rfm_recompute()
    return created


def _seed_customers() -> int:
    channel = Channel.objects.filter(slug="web").first()
    if channel is None:
        return 0
    created = 0
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    for index, (external_id, nickname, orders) in enumerate(CUSTOMERS, 1):
        customer, was_created = Customer.objects.get_or_create(
            channel=channel, external_id=external_id, defaults={"nickname": nickname}
        )
        created += was_created
        person = person_for_customer(customer_id=customer.pk)
        for n, (days_ago, amount) in enumerate(orders, 1):
            _, was_created = Order.objects.get_or_create(
                number=f"DEMO-{index:02d}-{n:02d}",
                defaults={
                    "customer": customer,
                    "person": person,
                    "amount": Decimal(amount),
                    "paid_at": now - dt.timedelta(days=days_ago, hours=n),
                    "status": Order.Status.COMPLETED if days_ago > 14 else Order.Status.PAID,
                    "items": [{"sku": f"SKU-{(index * 7 + n) % 30:03d}", "qty": 1 + n % 2}],
                },
            )
            created += was_created
    return created
