"""The decision pipeline: one function from a customer's text (and context) to a Decision.

Order (first stage that decides wins)::

    normalise → hand-off hooks (explicit 转人工 now; anger comes with routing) → pick from numbered choices
    → keyword rules → open form → product question (catalogue) → FAQ → intent model → suggestions /
    clarify / fallback

Details: an open form gets the message before keyword rules when the message carries what the form asked for
(an order number) or cancels it (算了); a message that does not answer the form may be answered by FAQ or
intent, and the form re-asks otherwise. Every decision carries a JSON trace: stage, ids, score, runners-up,
model version, entities, per-stage timings.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import sklearn
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _

from knowledge import context as ctx
from knowledge import forms_dialog, rules, versions
from knowledge.decision import Decision, DecisionContext
from knowledge.ml.normalize import normalize
from knowledge.services import faq as faq_service
from knowledge.services import intents as intent_service
from knowledge.services import mining as mining_service

logger = logging.getLogger(__name__)

CLARIFY_MIN = 0.2  # the second intent must be at least this likely to be offered as a choice

# -- hand-off hooks -----------------------------------------------------------------------------------------

HandoffHook = Callable[[str, DecisionContext, ctx.DialogueState], "str | None"]

_HUMAN_RE = re.compile(
    r"转人工|转接人工|人工客服|人工服务|人工坐席|真人客服|找人工|要人工|接人工|叫人工|人工在吗|"
    r"^人工[!！。.？?]*$|^客服[!！。.？?]*$|\bhuman\b|\breal person\b|\bagent please\b"
)


def explicit_human_request(text: str, context: DecisionContext, state: ctx.DialogueState) -> str | None:
    """The default hook: the customer asks for a person in so many words."""
    if "人工智能" in text:
        return None
    return "human_request" if _HUMAN_RE.search(text) else None


_handoff_hooks: list[HandoffHook] = [explicit_human_request]


def handoff_hook_register(hook: HandoffHook, *, replace_default: bool = False) -> None:
    """Add a hook ``(normalised_text, context, state) -> reason | None`` run before everything else.

    The routing app registers its anger and human-request detectors here (``replace_default=True`` drops
    the built-in 转人工 matcher when routing's is a superset).
    """
    if replace_default and explicit_human_request in _handoff_hooks:
        _handoff_hooks.remove(explicit_human_request)
    if hook not in _handoff_hooks:
        _handoff_hooks.append(hook)


def handoff_hooks() -> list[HandoffHook]:
    return list(_handoff_hooks)


# -- helpers -------------------------------------------------------------------------------------------------

_CHOICE_RE = re.compile(r"^(?:第|选|选择)?\s*([1-9一二三])\s*(?:个|条|项|号)?\s*[.。!！、]?$")
_CN_DIGITS = {"一": 1, "二": 2, "三": 3}
_PRICE_RE = re.compile(r"多少钱|价格|价钱|售价|几块|多钱|怎么卖|什么价|贵不贵|多少元|报价")
_COLOR_Q_RE = re.compile(r"颜色|配色|什么色|几种色|哪些色|几个色")
# A product named in a complaint or an after-sales question is context, not a question about the product.
_AFTERSALES_RE = re.compile(
    r"坏|故障|维修|修理|退货|退款|换货|退换|发票|开票|保修|质保|投诉|快递|物流|发货|没收到|破损|怎么办|售后|坏了"
)
_QUESTION_RE = re.compile(
    r"[吗呢?？嘛]|有没有|什么|哪些|哪个|几种|多少|多大|多长|多久|多重|是不是|能不能|是否|有.{0,6}[的吗不]"
)
_FILLER_RE = re.compile(r"[\s\W_]|这款|那款|这个|那个|呢|吗|啊|呀|的|款|型号|手机|耳机|充电器")
_STOCK_RE = re.compile(r"有货|有现货|现货|库存|有没有货|缺货|卖完|断货|还有吗|还有没有|售罄")


def _choice(text: str, n: int) -> int | None:
    m = _CHOICE_RE.match(text)
    if not m:
        return None
    raw = m.group(1)
    value = _CN_DIGITS.get(raw) or int(raw)
    return value - 1 if 1 <= value <= n else None


_threadpools: Any = None


def _single_threaded_blas() -> Any:
    """One BLAS/OpenMP thread while deciding.

    The matrices of one message are tiny: a second BLAS thread only adds hand-offs, and on a busy host
    (other workers, other processes) multi-threaded OpenBLAS spins and waits for a core. Measured with
    bench_decide on 2 cores under load: P99 112 ms -> 38 ms. The controller (threadpoolctl, ~0.02 ms per use)
    is made once the numerical libraries are loaded; until then nothing is limited.
    """
    global _threadpools
    if _threadpools is None:
        if not {"numpy", "scipy.sparse", "sklearn"} <= sys.modules.keys():
            return contextlib.nullcontext()
        from threadpoolctl import ThreadpoolController

        _threadpools = ThreadpoolController()
    return _threadpools.limit(limits=1)


def _money(value: Decimal) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.0f}"


class _Run:
    """One decision: holds the trace and the timings."""

    def __init__(self, text: str, context: DecisionContext) -> None:
        self.started = time.perf_counter()
        self.mark = self.started
        self.context = context
        self.raw = text if isinstance(text, str) else ("" if text is None else str(text))
        self.now = context.now or timezone.now()
        # The trace is stored unencrypted next to the (encrypted) message: it never holds the customer's text,
        # only lengths, ids, scores and the operator's own words (rule keywords, FAQ questions, intent names).
        self.trace: dict[str, Any] = {"input_chars": len(self.raw), "stages": []}
        self.state = ctx.DialogueState()
        self.product: ctx.ProductInfo | None = None

    # -- trace plumbing ----------------------------------------------------------------------------------
    def step(self, stage: str, outcome: str, **extra: Any) -> None:
        now = time.perf_counter()
        entry = {"stage": stage, "outcome": outcome, "ms": round((now - self.mark) * 1000, 3), **extra}
        self.trace["stages"].append(entry)
        self.mark = now

    def finish(self, kind: str, reply: str, stage: str, **extra: Any) -> Decision:
        fields = {k: extra.pop(k) for k in ("handoff_reason", "suggestions", "link_url", "image_url") if k in extra}
        self.trace.update(extra)
        self.trace["stage"] = stage
        self.trace["kind"] = kind
        self.trace["elapsed_ms"] = round((time.perf_counter() - self.started) * 1000, 3)
        if fields.get("handoff_reason"):
            self.trace["handoff_reason"] = fields["handoff_reason"]
        return Decision(kind=kind, reply=reply, trace=self.trace, **fields)

    def render(self, template: str, product: ctx.ProductInfo | None = None) -> str:
        product = product or self.product
        values = {
            "{nickname}": self.context.nickname or _("customer"),
            "{product}": product.name if product else _("the product"),
            "{price}": _money(product.price) if product else "-",
            "{colors}": (product.colors_text() or "-") if product else "-",
            "{stock}": str(product.stock) if product else "-",
        }
        for key, value in values.items():
            template = template.replace(key, value)
        return template

    # -- the pipeline ------------------------------------------------------------------------------------
    def run(self) -> Decision:
        context = self.context
        if context.message_type not in ("text", "voice", "link"):
            if context.message_type == "event":
                return self.finish("ignore", "", "event")
            return self.finish("fallback", _("Sorry, I can only read text messages for now."), "unsupported_type")
        text = normalize(self.raw)
        self.trace["normalized_chars"] = len(text)
        if not text:
            return self.finish("fallback", _("Please tell me what you need help with."), "empty")
        conversation_id = context.conversation_id
        try:  # versions and the dialogue context in one round trip
            keys = [] if conversation_id is None or settings.KEFU_EMBEDDED else [ctx.context_key(conversation_id)]
            self.versions, raw = versions.snapshot_with(keys)
            self.state = ctx.DialogueState.from_json(raw[0]) if keys else ctx.state_load(conversation_id)
        except Exception:  # noqa: BLE001 - Redis down: keep what this worker already has, without context
            logger.warning("version keys unavailable; using cached knowledge")
            self.versions = {}
            self.state = ctx.DialogueState()
        self.catalog = ctx.catalog_cache.get(self._version("catalog"))
        self.state.turns += 1
        self.entities = ctx.extract_entities(text, self.catalog)
        product_id = self.entities.products[0] if self.entities.products else self.state.last_product
        self.product = self.catalog.products.get(product_id) if product_id else None
        if self.entities.as_dict():
            self.trace["entities"] = self.entities.for_trace()
        self.step("normalize", "ok")
        with _single_threaded_blas():
            decision = self.pipeline(text)
        if self.product is not None:
            self.state.last_product = self.product.id
        self.trace["context"] = self.state.summary()
        ctx.state_save(context.conversation_id, self.state)
        self.trace["elapsed_ms"] = round((time.perf_counter() - self.started) * 1000, 3)
        return decision

    def _version(self, name: str) -> str:
        return self.versions.get(name) or versions.STALE_OK

    def _faq_index(self) -> faq_service.FaqIndex:
        faq, catalog = self._version("faq"), self._version("catalog")
        return faq_service.index_cache.get(
            versions.STALE_OK if versions.STALE_OK in (faq, catalog) else f"{faq}|{catalog}"
        )

    def _moved_on(self, decision: Decision | None, reprompt: str) -> Decision | None:
        """The customer left an open form for another question that we answered: close the form."""
        if decision is not None and reprompt and decision.kind in ("answer", "handoff"):
            self.state.form = None
        return decision

    def pipeline(self, text: str) -> Decision:
        state = self.state
        # 1. hand-off hooks
        for hook in _handoff_hooks:
            reason = hook(text, self.context, state)
            if reason:
                state.form = None
                state.pending = []
                self.step("handoff", "hit", reason=reason)
                return self.finish(
                    "handoff",
                    _("OK, I am transferring you to a human agent. Please wait a moment."),
                    "handoff",
                    handoff_reason=reason,
                )
        self.step("handoff", "miss")

        # 2. a reply to numbered choices we offered
        if state.pending:
            pending, state.pending = state.pending, []
            index = _choice(text, len(pending))
            if index is not None:
                self.step("choice", "picked", choice=index + 1)
                decision = self.answer_choice(pending[index])
                if decision is not None:
                    return decision
            else:
                self.step("choice", "ignored")

        # an open form that gets what it asked for (or a cancel) goes before keyword rules
        form = forms_dialog.FORMS.get((state.form or {}).get("name", ""))
        if form is not None:
            if forms_dialog.is_cancel(text):
                result = forms_dialog.cancel(state)
                self.step("form", "cancelled", form=form.name)
                return self.finish("answer", result.reply, "form", form=form.name, form_status="cancelled")
            if (form.name == "logistics" and self.entities.order_numbers) or (
                form.name == "product" and self.entities.products
            ):
                decision = self.form_step(form, text)
                if decision is not None:
                    return decision
                form = None

        # 3. keyword rules
        index = rules.cache.index(self._version("keyword_rules"))
        match = index.match(text, channel=self.context.channel_slug, now=self.now)
        if match.rule is not None:
            rule = match.rule
            self.step("keyword", "hit", rule_id=rule.id)
            return self.finish(
                "answer",
                self.render(rule.reply),
                "keyword",
                rule_id=rule.id,
                rule_name=rule.name,
                matched=list(match.words),
                score=1.0,
                candidates=[{"rule_id": r.id, "name": r.name, "priority": r.priority} for r in match.runners_up],
            )
        self.step("keyword", "miss", rules=len(index))

        # 4. the open form (message without the awaited value)
        reprompt = ""
        if form is not None and state.form is not None:
            result = form.step(state, text, self.entities)
            if result.status == "unrelated":
                reprompt = result.reply
                self.step("form", "unrelated", form=form.name)
            else:
                return self.form_decision(form.name, result)

        # 5. a question about a product (named now or earlier in the conversation)
        decision = self._moved_on(self.product_question(text), reprompt)
        if decision is not None:
            return decision

        # 6. FAQ
        rewritten = self.catalog.rewrite(text)
        if rewritten != text:
            self.trace["synonyms_applied"] = True
        candidates = faq_service.faq_search(self._faq_index(), rewritten, now=self.now)
        answer_at, suggest_at = faq_service.thresholds()
        faq_trace = [{"faq_id": c.faq.id, "question": c.faq.question, "confidence": c.confidence} for c in candidates]
        if candidates and candidates[0].confidence >= answer_at:
            best = candidates[0]
            self.step("faq", "hit", faq_id=best.faq.id)
            decision = self.faq_answer(
                best.faq, score=best.confidence, candidates=faq_trace[1:], matched=best.matched_question
            )
            return self._moved_on(decision, reprompt)
        self.step("faq", "low" if candidates else "miss", best=faq_trace[0]["confidence"] if faq_trace else None)

        # 7. intent model
        runtime = intent_service.runtime_cache.get(self._version("intents"))
        predictions = runtime.predict(rewritten) if runtime.model is not None else []
        coverage = runtime.coverage(rewritten) if predictions else 0.0
        intent_trace = [{"intent": label, "score": round(p, 4)} for label, p in predictions]
        self.trace["model_version"] = runtime.version
        if predictions and coverage >= intent_service.MIN_COVERAGE:
            (top, p1), p2 = predictions[0], (predictions[1][1] if len(predictions) > 1 else 0.0)
            info = runtime.intents.get(top)
            if p1 >= runtime.threshold and p1 - p2 >= runtime.margin and info is not None:
                self.step("intent", "hit", intent=top, score=round(p1, 4))
                decision = self._moved_on(self.intent_action(info, p1, intent_trace[1:]), reprompt)
                if decision is not None:
                    return decision
            self.step("intent", "low", intent=top, score=round(p1, 4), coverage=round(coverage, 2))
        else:
            self.step("intent", "miss" if runtime.model is not None else "no_model", coverage=round(coverage, 2))

        # 8. not sure: numbered FAQ suggestions, a choice of two intents, the form's question, or fallback
        suggestions = [c for c in candidates if c.confidence >= faq_service.SUGGESTION_FLOOR][:3]
        if suggestions and suggestions[0].confidence >= suggest_at and not reprompt:
            state.pending = [{"type": "faq", "id": c.faq.id, "title": c.faq.question} for c in suggestions]
            titles = [c.faq.question for c in suggestions]
            return self.finish(
                "clarify",
                self.numbered(_("Did you mean:"), titles),
                "faq_suggest",
                suggestions=tuple(titles),
                candidates=faq_trace,
                score=suggestions[0].confidence,
            )
        if predictions and coverage >= intent_service.MIN_COVERAGE and not reprompt:
            clarify = self.intent_clarify(runtime, predictions, intent_trace)
            if clarify is not None:
                return clarify
        if reprompt:
            return self.finish("form_step", reprompt, "form", form=(state.form or {}).get("name"), form_status="asked")
        return self.finish(
            "fallback",
            _("Sorry, I have not learned how to answer that yet. Could you rephrase it, or reply 人工 for an agent?"),
            "fallback",
            candidates=faq_trace + intent_trace,
        )

    # -- stages ------------------------------------------------------------------------------------------
    @staticmethod
    def numbered(title: str, options: list[str]) -> str:
        lines = [title] + [f"{i}. {option}" for i, option in enumerate(options, 1)]
        lines.append(_("Reply with the number."))
        return "\n".join(lines)

    def form_step(self, form: Any, text: str) -> Decision | None:
        result = form.step(self.state, text, self.entities)
        if result.status == "unrelated":
            return None
        return self.form_decision(form.name, result)

    def form_decision(self, name: str, result: forms_dialog.FormResult) -> Decision | None:
        self.step("form", result.status, form=name)
        if result.status == "resume":  # the product form filled its slot: answer the intent it was for
            product = self.catalog.products.get(result.data.get("product"))
            self.product = product or self.product
            runtime = intent_service.runtime_cache.get(self._version("intents"))
            info = runtime.intents.get(result.data.get("intent", ""))
            if info is None or product is None:
                return None
            return self.finish(
                "answer", self.render(info.answer, product), "form", form=name, form_status="done", intent=info.name
            )
        kind = "form_step" if result.status == "asked" else "answer"
        return self.finish(kind, result.reply, "form", form=name, form_status=result.status, **result.data)

    def product_question(self, text: str) -> Decision | None:
        product = self.product
        if product is None:
            return None
        if _AFTERSALES_RE.search(text):
            self.step("product", "after_sales", product_id=product.id)
            return None
        asking = bool(_QUESTION_RE.search(text)) or len(self.catalog.without_products(text)) <= 6
        asks: list[str] = []
        parts: list[str] = []
        colors = list(self.entities.colors)
        if (colors and asking) or _COLOR_Q_RE.search(text):
            asks.append("colors")
            available = product.colors_text()
            for color in colors[:3]:
                have = product.colors_like(color)
                if have:
                    parts.append(
                        _("Yes, %(product)s comes in %(colors)s.")
                        % {"product": product.name, "colors": "、".join(have)}
                    )
                else:
                    parts.append(
                        _("Sorry, %(product)s has no %(color)s; available colours: %(colors)s.")
                        % {"product": product.name, "color": color, "colors": available or "-"}
                    )
            if not colors:
                parts.append(
                    _("%(product)s colours: %(colors)s.") % {"product": product.name, "colors": available or "-"}
                )
        if _PRICE_RE.search(text):
            asks.append("price")
            parts.append(_("%(product)s costs ¥%(price)s.") % {"product": product.name, "price": _money(product.price)})
        if _STOCK_RE.search(text) or (asks == ["colors"] and product.stock <= 0):
            asks.append("stock")
            if product.stock > 0:
                parts.append(
                    _("%(product)s is in stock and ships within 48 hours of payment.") % {"product": product.name}
                )
            else:
                parts.append(_("%(product)s is out of stock at the moment.") % {"product": product.name})
        for name, value in product.attributes.items():
            key = normalize(name)
            if key and key in text and asking:
                asks.append(f"attribute:{name}")
                parts.append(
                    _("%(product)s %(name)s: %(value)s.") % {"product": product.name, "name": name, "value": value}
                )
        if not asks and self.entities.products and len(_FILLER_RE.sub("", self.catalog.without_products(text))) <= 2:
            asks.append("summary")  # just the product's name: say what we know about it
            stock = _("in stock") if product.stock > 0 else _("out of stock at the moment")
            parts.append(
                _("%(product)s: ¥%(price)s, colours %(colors)s, %(stock)s. What would you like to know about it?")
                % {
                    "product": product.name,
                    "price": _money(product.price),
                    "colors": product.colors_text() or "-",
                    "stock": stock,
                }
            )
        if not asks:
            self.step("product", "miss", product_id=product.id)
            return None
        followup = not self.entities.products
        self.step("product", "hit", product_id=product.id, asks=asks)
        return self.finish(
            "answer",
            "".join(parts) if all(p.endswith("。") for p in parts) else " ".join(parts),
            "product",
            product_id=product.id,
            product=product.name,
            asks=asks,
            from_context=followup,
            score=1.0,
        )

    def faq_answer(self, faq: faq_service.FaqAnswer, *, score: float, candidates: list, matched: str = "") -> Decision:
        reply = faq.reply_text()
        # accepted association rules (knowledge mining): offer related questions, answerable by their number
        answers = self._faq_index().answers
        related = [
            answers[pk]
            for pk, _question in mining_service.related_questions(faq.id, self._version("faq"))
            if pk in answers and answers[pk].valid_at(self.now)
        ]
        if related:
            reply = f"{reply}\n\n" + self.numbered(_("You may also want to know:"), [r.question for r in related])
            self.state.pending = [{"type": "faq", "id": r.id, "title": r.question} for r in related]
            self.trace["related_faq_ids"] = [r.id for r in related]
        return self.finish(
            "answer",
            reply,
            "faq",
            faq_id=faq.id,
            faq_question=faq.question,
            matched_question=matched,
            score=round(score, 4),
            candidates=candidates,
            link_url=faq.link_url,
            image_url=faq.image_url,
        )

    def intent_action(self, info: intent_service.IntentInfo, score: float, runners_up: list) -> Decision | None:
        state = self.state
        extra = {"intent": info.name, "intent_id": info.id, "score": round(score, 4), "candidates": runners_up}
        state.last_intent = info.name
        if info.handoff:
            state.form = None
            return self.finish(
                "handoff",
                _("OK, I am transferring you to a human agent. Please wait a moment."),
                "intent",
                handoff_reason=f"intent:{info.name}",
                **extra,
            )
        if info.form in forms_dialog.FORMS and info.form != "product":
            result = forms_dialog.FORMS[info.form].start(state, self.entities)
            self.step("form", f"start:{result.status}", form=info.form)
            kind = "form_step" if result.status == "asked" else "answer"
            return self.finish(kind, result.reply, "intent", form=info.form, form_status=result.status, **extra)
        if not info.answer:
            return None
        if info.needs_product and self.product is None:
            example = next(iter(self.catalog.products.values())).name if self.catalog.products else ""
            result = forms_dialog.FORMS["product"].start(state, info.name, example)
            return self.finish("form_step", result.reply, "intent", form="product", form_status="asked", **extra)
        return self.finish("answer", self.render(info.answer), "intent", **extra)

    def intent_clarify(self, runtime: Any, predictions: list, intent_trace: list) -> Decision | None:
        (a, p1), (b, p2) = predictions[0], predictions[1] if len(predictions) > 1 else (None, 0.0)
        if b is None or p2 < CLARIFY_MIN or p1 - p2 >= runtime.margin or p1 + p2 < runtime.threshold:
            return None
        options = [runtime.intents.get(a), runtime.intents.get(b)]
        if not all(options):
            return None
        titles = [o.description or o.name for o in options if o is not None]
        self.state.pending = [
            {"type": "intent", "name": o.name, "title": t} for o, t in zip(options, titles, strict=True) if o
        ]
        return self.finish(
            "clarify",
            self.numbered(_("Sorry, which one do you mean?"), titles),
            "intent_clarify",
            suggestions=tuple(titles),
            candidates=intent_trace,
            score=round(p1, 4),
        )

    def answer_choice(self, choice: dict[str, Any]) -> Decision | None:
        if choice.get("type") == "faq":
            faq = self._faq_index().answers.get(int(choice.get("id", 0)))
            if faq is None or not faq.valid_at(self.now):
                return None
            return self.faq_answer(faq, score=1.0, candidates=[])
        if choice.get("type") == "intent":
            runtime = intent_service.runtime_cache.get(self._version("intents"))
            info = runtime.intents.get(choice.get("name", ""))
            if info is None:
                return None
            self.trace["model_version"] = runtime.version
            return self.intent_action(info, 1.0, [])
        return None


WARM_UP_TEXTS = ("你好", "发票怎么开", "查物流", "asdkjh")


def decide_warm_up(*, freeze_gc: bool = True) -> None:
    """Build every per-worker cache (rules, FAQ index, intent model, embedder) before the first customer.

    With ``freeze_gc`` the objects alive now (models, matrices, vocabularies: millions of them) move to the
    garbage collector's permanent generation, so no later full collection walks them in the middle of a
    decision (``gc.freeze``). Call it once per worker process after start-up (e.g. Celery's
    ``worker_process_init``) and after the benchmark's set-up.
    """
    import gc

    for text in WARM_UP_TEXTS:
        decide(text=text, context=DecisionContext(channel_slug="web"))
    if freeze_gc:
        gc.collect()
        gc.freeze()


def decide(*, text: str, context: DecisionContext) -> Decision:
    """Text + context → Decision. Never raises: an unexpected error gives a fallback with stage "error"."""
    run = _Run(text, context)
    try:
        # Inputs are our own vectors: skip scikit-learn's per-call validation (~1-2 ms per message).
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            return run.run()
    except Exception as exc:  # noqa: BLE001 - a customer must always get an answer
        logger.exception("decision failed", extra={"conversation_id": context.conversation_id})
        return run.finish(
            "fallback",
            _("Sorry, I have not learned how to answer that yet. Could you rephrase it, or reply 人工 for an agent?"),
            "error",
            error=f"{type(exc).__name__}: {exc}"[:300],
        )
