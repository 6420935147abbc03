"""Demo knowledge for an electronics shop."""

from knowledge import rules
from knowledge.models import KeywordRule

KEYWORD_RULES = [
    # name, keyword, match type, priority, reply
    (
        "问候",
        "你好|您好|hello|hi|在吗",
        "contains",
        50,
        "您好，{nickname}！我是优选数码的智能客服小优，请问有什么可以帮您？可以问我发货、退换货、发票、保修等问题。",
    ),
    (
        "营业时间",
        "营业时间|几点上班|客服时间|工作时间",
        "contains",
        100,
        "人工客服时间为每天 9:00-21:00，智能客服 24 小时在线。",
    ),
    (
        "发货时间",
        "什么时候发货|多久发货|几天发货|发货时间",
        "contains",
        100,
        "现货商品在付款后 24 小时内发货，预售商品以商品页写明的时间为准。",
    ),
    (
        "退货",
        "退货|退换|七天无理由|7天无理由",
        "contains",
        100,
        "签收后 7 天内、商品完好且不影响二次销售的，可以申请七天无理由退货。在订单页点“申请售后”即可。",
    ),
    (
        "发票",
        "发票|开票",
        "contains",
        100,
        "我们可以开具增值税电子普通发票和专用发票。下单时填写抬头和税号，或在订单页“申请开票”。",
    ),
    ("感谢", "谢谢|多谢|感谢", "contains", 40, "不客气，很高兴为您服务！还有其他问题随时问我。"),
]


def seed_rules() -> int:
    created = 0
    for name, keyword, match_type, priority, reply in KEYWORD_RULES:
        _, was_created = KeywordRule.objects.get_or_create(
            name=name, defaults={"keyword": keyword, "match_type": match_type, "priority": priority, "reply": reply}
        )
        created += was_created
    if created:
        rules.bump_version()
    return created
