"""Benchmark the whole decision pipeline: ``python manage.py bench_decide``.

Generates a workload (default 500 FAQ entries with 3 similar questions each, 50 intents with 20 examples,
200 keyword rules of all four match types, 20 products, 20 orders) and plays multi-turn conversations
through ``knowledge.services.decide``: keyword hits, FAQ paraphrases, intent phrasings, product questions
with follow-ups, the order-tracking form, suggestion picks and gibberish. Prints P50/P90/P99 per message,
overall and per deciding stage.

Nothing is left behind: the workload is written inside one transaction that is rolled back at the end
(the existing knowledge rows are hidden inside it, so the workload is exactly the one described; other
writers to those tables wait until the benchmark ends), the conversations' Redis context keys and the
fitted FAQ index are deleted, and every in-process cache is reset. The one-off costs (training the intent
model, fitting the FAQ index, loading the embedding model) happen before timing starts and are reported
separately.
"""

from __future__ import annotations

import gc
import json
import os
import random
import statistics
import time
from collections import defaultdict
from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import transaction

from knowledge import context as ctx
from knowledge import services, versions
from knowledge.decision import DecisionContext
from knowledge.ml.evaluation import percentile

TOPICS = [
    "手机",
    "耳机",
    "充电器",
    "充电宝",
    "数据线",
    "屏幕",
    "电池",
    "摄像头",
    "蓝牙",
    "快充",
    "发票",
    "专票",
    "税号",
    "快递",
    "物流",
    "运费",
    "退货",
    "换货",
    "退款",
    "保修",
    "维修",
    "优惠券",
    "积分",
    "会员",
    "分期",
    "花呗",
    "地址",
    "订单",
    "赠品",
    "包装",
    "说明书",
    "保护壳",
    "贴膜",
    "系统",
    "内存",
    "存储卡",
    "耳塞",
    "充电盒",
    "降噪",
    "防水",
    "续航",
    "颜色",
    "尺寸",
    "重量",
    "价格",
    "库存",
    "预售",
    "定金",
    "尾款",
    "发货",
    "签收",
    "快递员",
    "自提",
    "门店",
    "客服",
    "售后",
    "评价",
    "晒单",
    "以旧换新",
    "回收",
]
ASPECTS = ["怎么", "能不能", "可以", "多久", "在哪里", "有没有", "为什么", "是不是", "需要", "要不要"]
VERBS = ["使用", "申请", "查看", "修改", "取消", "更换", "设置", "办理", "处理", "退回"]
PREFIXES = ["", "请问", "亲，", "我想问下", "麻烦问一下", "你好，", "客服，"]
SUFFIXES = ["", "呢", "吗", "啊", "？", "，谢谢", "，急"]
GIBBERISH = ["asdkjh", "😀😀😀", "嗯嗯", "？？？", "qwerty 123", "🙂👍", "哈哈哈哈", "...", "ok", "zzz"]
COLORS = ["黑色", "白色", "蓝色", "绿色", "紫色", "金色"]


class Command(BaseCommand):
    help = "Benchmark knowledge.services.decide over a generated workload; everything is rolled back."

    def add_arguments(self, parser):
        parser.add_argument("--faqs", type=int, default=500)
        parser.add_argument("--intents", type=int, default=50)
        parser.add_argument("--examples", type=int, default=20, help="examples per intent")
        parser.add_argument("--rules", type=int, default=200)
        parser.add_argument("--conversations", type=int, default=100)
        parser.add_argument("--turns", type=int, default=6, help="messages per conversation")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
        parser.add_argument(
            "--no-gc-freeze", action="store_true", help="leave the warmed-up objects to the garbage collector"
        )

    def handle(self, *args, **options):
        rng = random.Random(options["seed"])
        report: dict = {}
        conversation_ids: list[int] = []
        digest = ""
        try:
            with transaction.atomic():
                setup = self._workload(rng, options)
                report["setup_seconds"] = setup
                services.caches_reset()
                warm_started = time.perf_counter()
                services.decide_warm_up(freeze_gc=not options["no_gc_freeze"])  # every cache, before timing
                report["warmup_seconds"] = round(time.perf_counter() - warm_started, 2)
                from knowledge.services import faq as faq_service

                index = faq_service.index_cache.peek()
                digest = index.digest if index is not None else ""
                report["faq_backend"] = index.backend if index is not None else None
                gc_before = [g["collections"] for g in gc.get_stats()]
                samples, by_stage, kinds, conversation_ids = self._play(rng, options)
                report["gc_collections"] = [
                    g["collections"] - b for g, b in zip(gc.get_stats(), gc_before, strict=True)
                ]
                transaction.set_rollback(True)
        finally:
            gc.unfreeze()
            self._clean(conversation_ids, digest)
        report.update(self._summary(samples, by_stage, kinds, options))
        report["cpu_p50_ms"] = round(percentile(self.cpu_samples, 50), 3)
        report["cpu_p99_ms"] = round(percentile(self.cpu_samples, 99), 3)
        report["load_average"] = [round(x, 2) for x in os.getloadavg()]
        self._print(report, options)

    # -- workload ------------------------------------------------------------------------------------------
    def _workload(self, rng: random.Random, options) -> dict[str, float]:
        from knowledge.models import (
            DemoOrder,
            Faq,
            FaqCategory,
            FaqQuestion,
            Intent,
            IntentExample,
            IntentModel,
            KeywordRule,
            Product,
            Synonym,
        )

        timings: dict[str, float] = {}
        started = time.perf_counter()
        # Hide the real knowledge inside this transaction (rolled back at the end).
        IntentModel.objects.filter(active=True).update(active=False)
        for model in (FaqQuestion, Faq, FaqCategory, IntentExample, Intent, KeywordRule, Product, Synonym):
            model.objects.all().delete()

        self.faq_questions: list[list[str]] = []
        combos = [(a, b) for a in TOPICS for b in TOPICS if a != b]
        rng.shuffle(combos)
        category = FaqCategory.objects.create(name="bench")
        faqs = []
        for i in range(options["faqs"]):
            t1, t2 = combos[i % len(combos)]
            aspect, verb = rng.choice(ASPECTS), rng.choice(VERBS)
            question = f"{t1}{aspect}{verb}{t2}" + ("" if i < len(combos) else f"{i}")
            faqs.append(Faq(category=category, question=question, answer=f"关于{t1}和{t2}：第 {i} 条标准答案。"))
            self.faq_questions.append(
                [f"{t1}的{t2}{aspect}{verb}", f"{t2}{t1}{aspect}{verb}呢", f"请问{t1}{verb}{t2}{aspect}"]
            )
        Faq.objects.bulk_create(faqs)
        FaqQuestion.objects.bulk_create(
            [
                FaqQuestion(faq=faq, text=text)
                for faq, similar in zip(faqs, self.faq_questions, strict=True)
                for text in similar
            ]
        )
        self.faq_paraphrases = [f"{rng.choice(PREFIXES)}{q[0]}{rng.choice(SUFFIXES)}" for q in self.faq_questions]

        self.intent_phrases: list[list[str]] = []
        intent_topics = rng.sample(combos, options["intents"])
        for k, (t1, t2) in enumerate(intent_topics):
            form = "logistics" if k == 0 else ""
            intent = Intent.objects.create(
                name=f"意图{k}", description=f"{t1}{t2}", answer="" if form else f"意图{k}的答案。", form=form
            )
            phrases = set()
            if form:
                phrases.update(["查物流", "快递到哪了", "帮我查一下物流", "我的包裹到哪了", "查快递"])
            while len(phrases) < options["examples"]:
                phrases.add(
                    f"{rng.choice(PREFIXES)}{t1}{rng.choice(ASPECTS)}{rng.choice(VERBS)}{t2}{rng.choice(SUFFIXES)}"
                )
            phrases = sorted(phrases)
            IntentExample.objects.bulk_create([IntentExample(intent=intent, text=p) for p in phrases])
            self.intent_phrases.append([f"{rng.choice(PREFIXES)}{t2}{t1}{rng.choice(ASPECTS)}{rng.choice(VERBS)}"])

        self.rule_triggers: list[str] = []
        rules = []
        n = options["rules"]
        for i in range(n):
            kind = ("contains", "all", "exact", "regex")[
                0 if i < n * 0.6 else 1 if i < n * 0.8 else 2 if i < n * 0.9 else 3
            ]
            if kind == "contains":
                keyword, trigger = f"口令{i}号|暗语{i}号", f"我要说口令{i}号"
            elif kind == "all":
                keyword, trigger = f"活动{i}|报名", f"活动{i}怎么报名"
            elif kind == "exact":
                keyword, trigger = f"菜单{i}", f"菜单{i}"
            else:
                keyword, trigger = rf"编号\s*k{i}-\d{{3}}", f"编号 K{i}-123 是什么"
            rules.append(
                KeywordRule(name=f"bench{i}", keyword=keyword, match_type=kind, reply=f"规则{i}的回复", priority=i % 7)
            )
            self.rule_triggers.append(trigger)
        KeywordRule.objects.bulk_create(rules)

        self.products = []
        for i in range(20):
            name = f"星河 S{i} {'手机' if i % 3 == 0 else '耳机' if i % 3 == 1 else '充电器'}"
            Product.objects.create(
                name=name,
                sku=f"BENCH-{i}",
                aliases=f"S{i}",
                price=Decimal(99 + i * 100),
                colors=", ".join(rng.sample(COLORS, 3)),
                attributes={"续航": f"{i + 5} 小时"},
                stock=i % 4,
            )
            self.products.append(f"S{i}")
        self.orders = [f"20261127{i:05d}" for i in range(20)]
        DemoOrder.objects.filter(order_no__in=self.orders).delete()
        DemoOrder.objects.bulk_create(
            [DemoOrder(order_no=no, status="shipped", carrier="顺丰速运", tracking_no=f"SF{no}") for no in self.orders]
        )
        timings["data"] = round(time.perf_counter() - started, 2)

        started = time.perf_counter()
        versions.reset_all()
        model = services.intent_model_train_start(queue=False)
        model = services.intent_model_train_run(model_id=model.id, evaluate_holdout=False)
        if model.status != "ready":
            raise RuntimeError(f"bench model failed: {model.error}")
        services.intent_model_activate(model=model)
        timings["intent_training"] = round(time.perf_counter() - started, 2)

        started = time.perf_counter()
        versions.reset_all()
        from knowledge.services import faq as faq_service

        faq_service.index_cache.get(versions.STALE_OK)
        timings["faq_index"] = round(time.perf_counter() - started, 2)
        return timings

    # -- conversations -----------------------------------------------------------------------------------
    def _turns(self, rng: random.Random, turns: int) -> list[str]:
        out: list[str] = []
        while len(out) < turns:
            roll = rng.random()
            if roll < 0.2:
                out.append(rng.choice(self.rule_triggers))
            elif roll < 0.5:
                out.append(rng.choice(self.faq_paraphrases))
            elif roll < 0.7:
                out.append(rng.choice(rng.choice(self.intent_phrases)))
            elif roll < 0.8:
                out.extend([f"{rng.choice(self.products)} 多少钱", f"有{rng.choice(COLORS)}的吗"])
            elif roll < 0.87:
                out.extend(["查物流", rng.choice(self.orders)])
            elif roll < 0.93:
                out.append(rng.choice(GIBBERISH))
            else:
                out.extend([rng.choice(TOPICS), "1"])  # a vague word, then pick the first suggestion
        return out[:turns]

    def _play(self, rng: random.Random, options):
        samples: list[float] = []
        self.cpu_samples: list[float] = []
        by_stage: dict[str, list[float]] = defaultdict(list)
        kinds: dict[str, int] = defaultdict(int)
        ids = []
        for c in range(options["conversations"]):
            conversation_id = -(10**9) - c  # never a real conversation
            ids.append(conversation_id)
            context = DecisionContext(conversation_id=conversation_id, channel_slug="web", nickname="压测")
            for text in self._turns(rng, options["turns"]):
                started, cpu_started = time.perf_counter(), time.process_time()
                decision = services.decide(text=text, context=context)
                elapsed = (time.perf_counter() - started) * 1000
                self.cpu_samples.append((time.process_time() - cpu_started) * 1000)
                samples.append(elapsed)
                by_stage[decision.trace.get("stage", "?")].append(elapsed)
                kinds[decision.kind] += 1
        return samples, by_stage, kinds, ids

    # -- output --------------------------------------------------------------------------------------------
    @staticmethod
    def _summary(samples, by_stage, kinds, options) -> dict:
        def stats(values):
            return {
                "n": len(values),
                "p50_ms": round(percentile(values, 50), 3),
                "p90_ms": round(percentile(values, 90), 3),
                "p99_ms": round(percentile(values, 99), 3),
                "max_ms": round(max(values), 3) if values else 0.0,
            }

        overall = stats(samples)
        return {
            "workload": {k: options[k] for k in ("faqs", "intents", "examples", "rules", "conversations", "turns")},
            "messages": overall["n"],
            "p50_ms": overall["p50_ms"],
            "p90_ms": overall["p90_ms"],
            "p99_ms": overall["p99_ms"],
            "max_ms": overall["max_ms"],
            "mean_ms": round(statistics.fmean(samples), 3) if samples else 0.0,
            "by_stage": {stage: stats(values) for stage, values in sorted(by_stage.items())},
            "by_kind": dict(sorted(kinds.items())),
        }

    def _print(self, report: dict, options) -> None:
        if options["json"]:
            self.stdout.write(json.dumps(report, ensure_ascii=False))
            return
        w = report["workload"]
        self.stdout.write(
            f"workload: {w['faqs']} FAQs, {w['intents']} intents x {w['examples']} examples, {w['rules']} rules, "
            f"{w['conversations']} conversations x {w['turns']} turns; FAQ embeddings: {report.get('faq_backend')}"
        )
        self.stdout.write(f"setup (not timed): {report['setup_seconds']}, warm-up {report['warmup_seconds']} s")
        self.stdout.write(
            f"per message over {report['messages']} messages: P50 {report['p50_ms']:.2f} ms, "
            f"P90 {report['p90_ms']:.2f} ms, P99 {report['p99_ms']:.2f} ms, max {report['max_ms']:.2f} ms"
        )
        self.stdout.write(
            f"CPU time per message (this process; unaffected by other processes waiting for the CPU): "
            f"P50 {report['cpu_p50_ms']:.2f} ms, P99 {report['cpu_p99_ms']:.2f} ms; load average {report['load_average']}"
        )
        self.stdout.write(f"garbage collections while timing (generations 0/1/2): {report.get('gc_collections')}")
        for stage, s in report["by_stage"].items():
            self.stdout.write(f"  {stage:<15} n={s['n']:<5} P50 {s['p50_ms']:7.2f} ms  P99 {s['p99_ms']:7.2f} ms")
        self.stdout.write(f"decisions: {report['by_kind']}")

    @staticmethod
    def _clean(conversation_ids: list[int], digest: str) -> None:
        from core import redis as kredis
        from knowledge.services import faq as faq_service

        try:
            client = kredis.client()
            if conversation_ids:
                client.delete(*[ctx.context_key(c) for c in conversation_ids])
            if digest:
                client.delete(faq_service.index_key(digest))
        except Exception:  # noqa: BLE001 - Redis gone: the keys expire by themselves
            pass
        faq_service._recent.clear()
        versions.reset_all()
