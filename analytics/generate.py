"""A synthetic shop history for benchmarks and demos (``manage.py analytics_generate``): customers with repeat
visits, conversations of 1-5 turns with realistic decision traces (FAQ, intent, keyword, product answers,
clarifications, fallbacks, hand-offs), tickets with agents, replies and CSAT, and orders, written with ``COPY``.

Message text is encrypted like real messages. Patterns are planted so every panel has something to show: a
topic pair (怎么开发票 → 发票税率, 70 %), comebacks on the same topic within 24 h, orders after price questions,
groups of unanswered questions (专票, 花呗, 海外...). Ids are reserved from the sequences first, so it can run next
to live traffic, but it writes real rows: use a scratch database (see README, "Analytics and knowledge mining").
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.utils import timezone

FAQS = [
    ("怎么开发票", "在订单详情页点击“申请发票”，电子发票 1-3 个工作日内发到邮箱。"),
    ("发票税率是多少", "商品发票税率为 13%，服务类为 6%。"),
    ("几天发货", "付款后 48 小时内发货，预售商品以页面为准。"),
    ("支持七天无理由退货吗", "支持，签收后 7 天内商品完好即可申请。"),
    ("退货运费谁承担", "质量问题由我们承担，无理由退货由买家承担。"),
    ("支持货到付款吗", "暂不支持货到付款。"),
    ("发什么快递", "默认顺丰，偏远地区为中国邮政。"),
    ("怎么修改收货地址", "未发货前可在订单详情页修改地址。"),
    ("保修多久", "整机保修一年，电池保修半年。"),
    ("坏了怎么申请维修", "在“我的-售后”提交维修申请，我们会安排上门取件。"),
    ("有优惠券吗", "关注店铺即可领取新人券。"),
    ("会员有什么权益", "会员享受积分、生日券和专属客服。"),
    ("怎么查物流", "在订单详情页查看物流，或把订单号发给我。"),
    ("能开电子发票吗", "可以，默认开具电子普通发票。"),
    ("可以改发票信息吗", "发票开具前可在订单页修改。"),
    ("充电器是原装的吗", "是，均为原装配件。"),
    ("手机支持无线充电吗", "X1 Pro 支持 50W 无线充电。"),
    ("可以分期付款吗", "支持信用卡分期。"),
    ("价格保护多久", "购买后 15 天内降价可申请保价。"),
    ("包装有几种", "标准包装和礼盒包装两种。"),
    ("怎么联系售后", "回复“人工”即可联系售后客服。"),
    ("可以指定送货时间吗", "可以在备注中写明期望的送货时间。"),
    ("订单怎么取消", "未发货订单可在订单详情页直接取消。"),
    ("退款多久到账", "退款 1-3 个工作日原路退回。"),
]
INTENT_TEXTS = {
    "price": "这个多少钱",
    "stock": "还有货吗",
    "shipping": "什么时候发货",
    "refund": "我要退款",
    "complaint": "我要投诉你们",
    "warranty": "保修怎么算",
    "coupon": "有没有优惠",
    "payment": "能用微信付吗",
    "size": "尺寸是多少",
    "delivery_time": "几天能到",
}
INTENTS = [
    ("price", "问价格"),
    ("stock", "问库存"),
    ("shipping", "问发货"),
    ("refund", "申请退款"),
    ("complaint", "投诉"),
    ("warranty", "问保修"),
    ("coupon", "问优惠"),
    ("payment", "问支付"),
    ("size", "问尺寸规格"),
    ("delivery_time", "问送达时间"),
]
PRODUCTS = [("X1 Pro 手机", 3999), ("X1 手机", 2999), ("Air 耳机", 699), ("Buds 耳机", 299), ("65W 充电器", 149)]
UNANSWERED = [
    ["能开增值税专用发票吗", "可以开专票吗", "专票怎么开", "公司要专票能开吗", "能不能开专票", "开个专票"],
    ["支持花呗分期吗", "可以用花呗吗", "花呗能分几期", "能花呗付款吗", "花呗分期有手续费吗"],
    ["能寄到香港吗", "支持海外发货吗", "国外能买吗", "可以寄到台湾吗", "发不发海外"],
    ["发票抬头写错了能改吗", "抬头开错了怎么办", "能修改发票抬头吗", "发票抬头填错了"],
    ["旧手机可以回收吗", "有以旧换新吗", "旧机能抵钱吗", "以旧换新怎么弄"],
    ["线下有门店吗", "实体店在哪里", "可以去门店自提吗", "附近有线下店吗"],
    ["送钢化膜吗", "能帮忙贴膜吗", "有没有送手机膜", "手机膜送不送"],
    ["新品什么时候预售", "预售能退定金吗", "预售什么时候发货", "预售定金能退吗"],
]
NOISE = ["你们老板是谁", "今天天气怎么样", "在不在", "哈哈", "随便问问", "你是机器人吗", "我想想"]
PREFIXES = ["", "", "", "请问", "你好，", "亲，", "问一下"]
SUFFIXES = ["", "？", "?", "呀", "啊"]
REASONS = [
    ("fallback_streak", 0.30),
    ("customer_request", 0.30),
    ("intent", 0.20),
    ("anger", 0.12),
    ("low_confidence_streak", 0.08),
]
CSAT_P = [0.07, 0.06, 0.12, 0.30, 0.45]


@dataclass
class Ids:
    """Ids reserved from a table's sequence (nothing else can take them)."""

    table: str
    start: int = 0
    size: int = 0
    used: int = 0

    def reserve(self, size: int) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [self.table])
            (sequence,) = cursor.fetchone()
            cursor.execute("SELECT nextval(%s)", [sequence])
            (start,) = cursor.fetchone()
            cursor.execute("SELECT setval(%s, %s)", [sequence, start + size])
        self.start, self.size, self.used = start, size, 0

    def next(self) -> int:
        if self.used >= self.size:
            raise RuntimeError(f"{self.table}: reserved ids used up")
        self.used += 1
        return self.start + self.used - 1


@dataclass
class Rows:
    customers: list = field(default_factory=list)
    persons: list = field(default_factory=list)
    links: list = field(default_factory=list)
    conversations: list = field(default_factory=list)
    messages: list = field(default_factory=list)
    tickets: list = field(default_factory=list)
    events: list = field(default_factory=list)
    orders: list = field(default_factory=list)

    def clear(self) -> None:
        for name in self.__dataclass_fields__:
            getattr(self, name).clear()


COLUMNS = {
    "customers": ("bots_customer", "id, created_at, updated_at, external_id, nickname, channel_id"),
    "persons": ("routing_person", "id, created_at, updated_at, name, note"),
    "links": ("routing_customerlink", "customer_id, linked_at, person_id"),
    "conversations": (
        "bots_conversation",
        "id, created_at, updated_at, status, last_message_at, resolved_at, channel_id, customer_id",
    ),
    "messages": (
        "bots_message",
        "id, direction, sender, type, content, meta, trace, status, created_at, processed_at, channel_id, "
        "conversation_id, reply_to_id",
    ),
    "tickets": (
        "routing_ticket",
        "id, created_at, updated_at, status, priority, reason, intent, tier, leave_message, queued_at, assigned_at, "
        "first_response_at, resolved_at, closed_at, category, csat_state, csat_score, csat_asked_at, "
        "csat_answered_at, version, assignee_id, conversation_id, customer_id, group_id, person_id",
    ),
    "events": (
        "routing_ticketevent",
        "id, kind, from_status, to_status, text, data, created_at, actor_id, assignee_id, group_id, ticket_id",
    ),
    "orders": (
        "routing_order",
        "id, created_at, updated_at, number, amount, paid_at, items, status, customer_id, person_id",
    ),
}


class Generator:
    def __init__(self, *, messages: int, days: int, seed: int, prefix: str, end: dt.datetime | None = None):
        from core import crypto

        self.target = messages
        self.days = days
        self.rng = np.random.default_rng(seed)
        self.prefix = prefix
        self.end = end or timezone.now()
        self.encrypt = crypto.keyring().encrypt
        self.rows = Rows()
        self.counts = dict.fromkeys(COLUMNS, 0)
        self.n_messages = 0
        self.order_seq = 0

    # -- reference data (ORM, idempotent) -----------------------------------------------------------------------
    def setup(self) -> None:
        from django.contrib.auth.models import Group, User

        from bots.models import Channel
        from knowledge.models import Faq, Intent, Product
        from routing.models import AgentGroup, AgentProfile

        p = self.prefix
        self.channels = [
            Channel.objects.get_or_create(slug=f"{p}-{kind}", defaults={"kind": kind, "name": f"{p} {kind}"})[0]
            for kind in ("web", "oa", "bridge")
        ]
        self.groups = [
            AgentGroup.objects.get_or_create(slug=f"{p}-{slug}", defaults={"name": f"{p}-{name}"})[0]
            for slug, name in (("presale", "售前"), ("aftersale", "售后"), ("vip", "VIP"))
        ]
        agent_role = Group.objects.get_or_create(name="agent")[0]
        self.agents: dict[int, list[int]] = {g.id: [] for g in self.groups}
        for i in range(12):
            user, created = User.objects.get_or_create(username=f"{p}-agent-{i:02d}")
            if created:
                user.set_unusable_password()
                user.save()
                user.groups.add(agent_role)
            profile, _ = AgentProfile.objects.get_or_create(user=user, defaults={"display_name": f"客服{i:02d}"})
            group = self.groups[i % 3]
            profile.groups.add(group)
            self.agents[group.id].append(user.id)
        faqs = list(Faq.objects.filter(enabled=True).order_by("id")[:60])
        if len(faqs) < 10:
            faqs = [Faq.objects.get_or_create(question=q, defaults={"answer": a})[0] for q, a in FAQS]
        self.faqs = [(f.id, f.question, f.answer[:200]) for f in faqs]
        by_question = {q: i for i, (_id, q, _a) in enumerate(self.faqs)}
        first = by_question.get("怎么开发票", 0)
        second = by_question.get("发票税率是多少", 1 if len(self.faqs) > 1 else 0)
        self.planted = (first, second)
        intents = list(Intent.objects.filter(enabled=True).order_by("id")[:40])
        if len(intents) < 5:
            intents = [Intent.objects.get_or_create(name=n, defaults={"description": d})[0] for n, d in INTENTS]
        self.intents = [(i.id, i.name) for i in intents]
        products = list(Product.objects.filter(enabled=True).order_by("id")[:40])
        if not products:
            products = [
                Product.objects.get_or_create(sku=f"{p}-{k}", defaults={"name": n, "price": Decimal(price)})[0]
                for k, (n, price) in enumerate(PRODUCTS)
            ]
        self.products = [(pr.id, pr.name) for pr in products]
        self.faq_p = self._zipf(len(self.faqs), 1.0)
        self.intent_p = self._zipf(len(self.intents), 0.8)

    def _zipf(self, n: int, s: float) -> np.ndarray:
        weights = 1.0 / np.arange(1, n + 1) ** s
        return weights / weights.sum()

    # -- one conversation ---------------------------------------------------------------------------------------
    def _when(self) -> dt.datetime:
        """A start time in the window, busier in the afternoon and evening (Asia/Shanghai)."""
        local = timezone.localtime(self.end).replace(hour=0, minute=0, second=0, microsecond=0)
        while True:
            day = int(self.rng.integers(0, self.days))
            hour = float(np.clip(self.rng.normal(15, 4), 0, 23.99))
            when = local - dt.timedelta(days=day) + dt.timedelta(hours=hour, seconds=float(self.rng.uniform(0, 59)))
            if when < self.end - dt.timedelta(minutes=10):
                return when

    def _text(self, base: str) -> str:
        return f"{self.rng.choice(PREFIXES)}{base}{self.rng.choice(SUFFIXES)}"

    def _decision(self, previous: dict | None, same_topic: dict | None, turn: int) -> dict:
        """A decision trace (without timings) and the customer's text."""
        rng = self.rng
        if same_topic is not None:
            return dict(same_topic)
        if previous and previous.get("faq_index") == self.planted[0] and rng.random() < 0.7:
            index = self.planted[1]
            return self._faq(index)
        r = rng.random()
        if r < 0.42:
            return self._faq(int(rng.choice(len(self.faqs), p=self.faq_p)))
        if r < 0.62:
            index = int(rng.choice(len(self.intents), p=self.intent_p))
            intent_id, name = self.intents[index]
            kind = "handoff" if name in ("refund", "complaint") and rng.random() < 0.35 else "answer"
            trace = {"kind": kind, "stage": "intent", "intent": name, "intent_id": intent_id}
            if kind == "handoff":
                trace["handoff_reason"] = f"intent:{name}"
            text = self._text(INTENT_TEXTS.get(name, name))
            return {"trace": trace, "text": text, "score": rng.uniform(0.6, 0.99)}
        if r < 0.70:
            return {
                "trace": {"kind": "answer", "stage": "keyword", "rule_id": int(rng.integers(1, 12))},
                "text": self._text("你好"),
                "score": 1.0,
            }
        if r < 0.78:
            product_id, name = self.products[int(rng.integers(0, len(self.products)))]
            trace = {
                "kind": "answer",
                "stage": "product",
                "product_id": product_id,
                "entities": {"products": [product_id]},
            }
            return {"trace": trace, "text": self._text(f"{name}多少钱"), "score": 1.0}
        if r < 0.83:
            return {
                "trace": {"kind": "clarify", "stage": "faq_suggest"},
                "text": self._text("那个怎么弄"),
                "score": 0.3,
            }
        if r < 0.86:
            return {
                "trace": {"kind": "handoff", "stage": "handoff", "handoff_reason": "human_request"},
                "text": "转人工",
                "score": 1.0,
            }
        group = UNANSWERED[int(rng.integers(0, len(UNANSWERED)))] if rng.random() < 0.8 else NOISE
        text = self._text(str(group[int(rng.integers(0, len(group)))]))
        return {"trace": {"kind": "fallback", "stage": "fallback"}, "text": text, "score": 0.0}

    def _faq(self, index: int) -> dict:
        faq_id, question, _answer = self.faqs[index]
        trace = {"kind": "answer", "stage": "faq", "faq_id": faq_id, "faq_question": question}
        return {
            "trace": trace,
            "text": self._text(question),
            "score": float(self.rng.uniform(0.6, 0.99)),
            "faq_index": index,
        }

    def _elapsed(self, stage: str) -> float:
        median = {"keyword": 1.5, "product": 2.5, "handoff": 1.0}.get(stage, 9.0)
        return round(float(median * np.exp(self.rng.normal(0, 0.55))), 3)

    def conversation(self, customer: tuple[int, int, int], start: dt.datetime, same: dict | None) -> list[dict]:
        """Rows of one conversation; returns the decisions made (to come back on)."""
        rng = self.rng
        customer_id, channel_id, person_id = customer
        conversation_id = self.ids["conversations"].next()
        n_turns = int(rng.choice([1, 2, 3, 4, 5], p=[0.3, 0.3, 0.2, 0.12, 0.08]))
        now = start
        decisions: list[dict] = []
        handoff: dict | None = None
        fallbacks = 0
        previous = None
        for turn in range(n_turns):
            decision = self._decision(previous, same if turn == 0 else None, turn)
            trace = dict(decision["trace"])
            fallbacks = fallbacks + 1 if trace["kind"] == "fallback" else 0
            if fallbacks >= 2:
                trace = {"kind": "handoff", "stage": "fallback", "handoff_reason": "fallback_streak"}
            trace["elapsed_ms"] = self._elapsed(trace["stage"])
            trace["score"] = round(float(decision["score"]), 4)
            trace["input_chars"] = len(decision["text"])
            inbound_id = self.ids["messages"].next()
            self._message(
                inbound_id, "in", "customer", decision["text"], trace, "processed", now, channel_id, conversation_id
            )
            reply_at = now + dt.timedelta(seconds=float(0.2 + rng.lognormal(-0.3, 0.6)))
            reply = self._reply_text(trace)
            self._message(
                self.ids["messages"].next(),
                "out",
                "bot",
                reply,
                trace,
                "sent",
                reply_at,
                channel_id,
                conversation_id,
                reply_to=inbound_id,
            )
            decisions.append(decision)
            previous = decision
            now = reply_at
            if trace["kind"] == "handoff":
                handoff = trace
                break
            now += dt.timedelta(seconds=float(rng.uniform(8, 120)))
        status, resolved_at = "bot", None
        if handoff is not None:
            now = self._ticket(conversation_id, customer, handoff, decisions, now)
            status, resolved_at = "resolved", now
        self.rows.conversations.append((conversation_id, start, now, status, now, resolved_at, channel_id, customer_id))
        # an order within 7 days: more likely after price, stock and product questions
        buying = any(
            d["trace"].get("intent") in ("price", "stock", "coupon") or d["trace"].get("stage") == "product"
            for d in decisions
        )
        if rng.random() < (0.22 if buying else 0.06):
            self._order(customer, start + dt.timedelta(hours=float(rng.uniform(0.1, 7 * 24 - 1))))
        elif rng.random() < 0.02:
            self._order(customer, start + dt.timedelta(days=float(rng.uniform(8, 40))))
        return decisions

    def _reply_text(self, trace: dict) -> str:
        if "faq_id" in trace:
            return next((a for i, _q, a in self.faqs if i == trace["faq_id"]), "好的")
        return {
            "fallback": "抱歉，这个问题我还没学会，您可以换个说法，或回复“人工”联系客服。",
            "handoff": "好的，正在为您转接人工客服，请稍候。",
            "clarify": "您是不是想问：\n1. 怎么开发票\n2. 几天发货\n回复数字即可。",
        }.get(trace["kind"], "好的，已为您查询。")

    def _message(self, pk, direction, sender, text, trace, status, when, channel_id, conversation_id, reply_to=None):
        self.rows.messages.append(
            (
                pk,
                direction,
                sender,
                "text",
                self.encrypt(text),
                "{}",
                json.dumps(trace, ensure_ascii=False) if trace is not None else None,
                status,
                when,
                when if direction == "in" else None,
                channel_id,
                conversation_id,
                reply_to,
            )
        )
        self.n_messages += 1

    def _ticket(self, conversation_id, customer, handoff, decisions, at) -> dt.datetime:
        rng = self.rng
        customer_id, channel_id, person_id = customer
        reason = handoff.get("handoff_reason", "")
        if reason.startswith("intent:"):
            reason, intent = "intent", reason[7:]
        else:
            intent = ""
            if reason == "human_request":
                reason = "customer_request"
            if rng.random() < 0.12:
                reason = "anger"
        if reason not in dict(REASONS):
            reason = "customer_request"
        group = self.groups[1] if reason in ("intent", "anger") else self.groups[int(rng.integers(0, 3))]
        agent = int(rng.choice(self.agents[group.id]))
        ticket_id = self.ids["tickets"].next()
        created = at + dt.timedelta(seconds=1)
        assigned = created + dt.timedelta(seconds=float(rng.uniform(2, 240)))
        first = assigned + dt.timedelta(seconds=float(rng.lognormal(np.log(45), 0.8)))
        t = first
        n_replies = int(rng.integers(1, 5))
        for k in range(n_replies):
            pk = self.ids["messages"].next()
            self._message(
                pk,
                "out",
                "agent",
                "您好，我来帮您处理。" if k == 0 else "已经为您处理好了。",
                None,
                "sent",
                t,
                channel_id,
                conversation_id,
            )
            self.rows.events.append(
                (self.ids["events"].next(), "replied", "", "", "", "{}", t, agent, None, None, ticket_id)
            )
            if k < n_replies - 1:
                t += dt.timedelta(seconds=float(rng.uniform(30, 240)))
                pk = self.ids["messages"].next()
                self._message(
                    pk,
                    "in",
                    "customer",
                    "好的谢谢",
                    {"kind": "human", "stage": "with_agent"},
                    "processed",
                    t,
                    channel_id,
                    conversation_id,
                )
                t += dt.timedelta(seconds=float(rng.uniform(10, 120)))
        resolved = t + dt.timedelta(seconds=float(rng.uniform(30, 600)))
        score = int(rng.choice([1, 2, 3, 4, 5], p=CSAT_P)) if rng.random() < 0.6 else None
        self.rows.events.append(
            (self.ids["events"].next(), "created", "", "queued", "", "{}", created, None, None, group.id, ticket_id)
        )
        self.rows.events.append(
            (
                self.ids["events"].next(),
                "resolved",
                "assigned",
                "resolved",
                "",
                "{}",
                resolved,
                agent,
                None,
                None,
                ticket_id,
            )
        )
        self.rows.tickets.append(
            (
                ticket_id,
                created,
                resolved,
                "closed",
                2,
                reason,
                intent,
                "",
                False,
                created,
                assigned,
                first,
                resolved,
                resolved + dt.timedelta(hours=24),
                "question_answered",
                "answered" if score else "lapsed",
                score,
                resolved,
                resolved + dt.timedelta(minutes=2) if score else None,
                1,
                agent,
                conversation_id,
                customer_id,
                group.id,
                person_id,
            )
        )
        return resolved

    def _order(self, customer, paid_at: dt.datetime) -> None:
        if paid_at > self.end:
            return
        customer_id, _channel_id, person_id = customer
        self.order_seq += 1
        status = str(self.rng.choice(["paid", "shipped", "completed", "refunded"], p=[0.3, 0.3, 0.35, 0.05]))
        amount = Decimal(str(round(float(self.rng.lognormal(np.log(300), 0.9)), 2)))
        self.rows.orders.append(
            (
                self.ids["orders"].next(),
                paid_at,
                paid_at,
                f"{self.prefix.upper()}{self.order_seq:09d}-{self.seed_tag}",
                amount,
                paid_at,
                "[]",
                status,
                customer_id,
                person_id,
            )
        )

    # -- the run ------------------------------------------------------------------------------------------------
    def _flush(self) -> None:
        with connection.cursor() as cursor:
            for name, (table, columns) in COLUMNS.items():
                rows = getattr(self.rows, name)
                if not rows:
                    continue
                with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                self.counts[name] += len(rows)
        self.rows.clear()

    def run(self, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
        say = progress or (lambda _m: None)
        started = time.perf_counter()
        self.setup()
        self.seed_tag = f"{int(time.time()) % 100000:05d}"
        estimate = self.target // 3 + 1000
        self.ids = {name: Ids(COLUMNS[name][0]) for name in COLUMNS if name != "links"}
        with transaction.atomic():
            self.ids["messages"].reserve(int(self.target * 1.6) + 1000)
            self.ids["conversations"].reserve(estimate)
            self.ids["customers"].reserve(estimate)
            self.ids["persons"].reserve(estimate)
            self.ids["tickets"].reserve(estimate)
            self.ids["events"].reserve(int(self.target * 0.5) + 1000)
            self.ids["orders"].reserve(estimate)
        rng = self.rng
        customer_n = 0
        while self.n_messages < self.target:
            customer_n += 1
            customer_id = self.ids["customers"].next()
            person_id = self.ids["persons"].next()
            channel = self.channels[int(rng.choice(3, p=[0.5, 0.3, 0.2]))]
            created = self._when()
            self.rows.customers.append(
                (customer_id, created, created, f"{self.prefix}-{self.seed_tag}-{customer_n}", "", channel.id)
            )
            self.rows.persons.append((person_id, created, created, "", ""))
            self.rows.links.append((customer_id, created, person_id))
            customer = (customer_id, channel.id, person_id)
            start = created
            visits = 1 + int(rng.geometric(0.6)) - 1
            same = None
            for _visit in range(visits):
                if start > self.end:
                    break
                decisions = self.conversation(customer, start, same)
                # come back: a third of the time within a day, on the same topic half of those times
                if rng.random() < 0.35:
                    start = start + dt.timedelta(hours=float(rng.uniform(1, 20)))
                    topical = [d for d in decisions if d["trace"].get("kind") == "answer"]
                    same = topical[0] if topical and rng.random() < 0.5 else None
                else:
                    start = start + dt.timedelta(days=float(rng.uniform(2, 40)))
                    same = None
                if self.n_messages >= self.target:
                    break
            if len(self.rows.messages) >= 50000:
                self._flush()
                say(f"{self.counts['messages']:,} messages")
        self._flush()
        with connection.cursor() as cursor:
            for table in (
                "bots_customer",
                "bots_conversation",
                "bots_message",
                "routing_person",
                "routing_ticket",
                "routing_ticketevent",
                "routing_order",
            ):
                cursor.execute(f"ANALYZE {table}")
        return {**self.counts, "seconds": round(time.perf_counter() - started, 1)}


def generate(*, messages: int, days: int = 90, seed: int = 7, prefix: str = "gen", progress=None) -> dict[str, Any]:
    return Generator(messages=messages, days=days, seed=seed, prefix=prefix).run(progress)
