"""Multi-turn forms: the bot asks for a missing slot, validates the answer, and finishes or gives up.

A form's state is ``DialogueState.form`` (in the Redis context), e.g. ``{"name": "logistics", "slot":
"order_no", "attempts": 1}``. Forms never raise and never read the database directly: orders come from
the registered lookup (``knowledge.context.order_lookup``).

* ``logistics`` ("查物流"): asks for the order number, checks its format, looks the order up and answers
  with its status and tracking; after 3 failed tries it stops and offers an agent.
* ``product``: an intent whose answer needs a product (price, stock...) and none is known yet; asks which
  product, then the pipeline renders that intent's answer for it.

Any form is cancelled by 算了 / 换个问题 / 不用了 / 取消 / 不查了.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from django.utils.translation import gettext as _

from knowledge import context as ctx

CANCEL_RE = re.compile(r"^(?:算了|换个问题|不用了|不用查了|不查了|取消|取消查询|没事了|不要了|先不用了|退出)")
MAX_ATTEMPTS = 3
_DIGITS = re.compile(r"\d{4,}")


@dataclasses.dataclass(frozen=True)
class FormResult:
    """What a form step produced.

    ``status``: ``asked`` (a question for the customer; the form stays open), ``done`` (answered, form
    closed), ``cancelled``, ``gave_up`` (closed after too many tries), ``resume`` (the slot is filled: the
    pipeline finishes the job, e.g. renders an intent for ``product``), ``unrelated`` (the message did not
    answer the question: the pipeline may answer it some other way, else re-asks with ``reply``).
    """

    status: str
    reply: str = ""
    data: dict[str, Any] = dataclasses.field(default_factory=dict)


def is_cancel(text: str) -> bool:
    return bool(CANCEL_RE.match(text.strip()))


def _order_answer(order: ctx.OrderInfo) -> str:
    lines = [_("Order %(no)s: %(status)s.") % {"no": order.order_no, "status": order.status}]
    if order.items:
        lines.append(_("Items: %(items)s") % {"items": order.items})
    if order.carrier or order.tracking_no:
        lines.append(
            _("Carrier: %(carrier)s, tracking number %(tracking)s")
            % {"carrier": order.carrier or "-", "tracking": order.tracking_no or "-"}
        )
    if order.last_event:
        lines.append(_("Latest: %(event)s") % {"event": order.last_event})
    return "\n".join(lines)


class LogisticsForm:
    name = "logistics"
    slot = "order_no"

    def ask(self) -> str:
        return _("Sure. Please send me your order number (10-24 digits, shown under My orders).")

    def start(self, state: ctx.DialogueState, entities: ctx.Entities) -> FormResult:
        if entities.order_numbers:
            state.form = {"name": self.name, "slot": self.slot, "attempts": 0}
            return self._lookup(state, entities.order_numbers[0])
        state.form = {"name": self.name, "slot": self.slot, "attempts": 0}
        return FormResult("asked", self.ask())

    def step(self, state: ctx.DialogueState, text: str, entities: ctx.Entities) -> FormResult:
        if entities.order_numbers:
            return self._lookup(state, entities.order_numbers[0])
        digits = _DIGITS.search(text)
        if digits and not entities.phones:
            return self._failed(
                state,
                _(
                    "%(value)s does not look like an order number (10-24 digits). Please check it and send it again, "
                    "or reply 算了 to stop."
                )
                % {"value": digits.group(0)},
            )
        return FormResult(
            "unrelated", _("Please send the order number (10-24 digits), or reply 算了 to ask something else.")
        )

    def _lookup(self, state: ctx.DialogueState, order_no: str) -> FormResult:
        try:
            order = ctx.order_lookup(order_no)
        except Exception:  # noqa: BLE001 - a broken lookup must not break the conversation
            order = None
        if order is None:
            return self._failed(
                state,
                _("I could not find order %(no)s. Please check the number and send it again, or reply 算了 to stop.")
                % {"no": order_no},
            )
        state.form = None
        state.slots["order_no"] = order.order_no
        return FormResult("done", _order_answer(order))

    def _failed(self, state: ctx.DialogueState, reply: str) -> FormResult:
        form = dict(state.form or {"name": self.name, "slot": self.slot, "attempts": 0})
        form["attempts"] = int(form.get("attempts", 0)) + 1
        if form["attempts"] >= MAX_ATTEMPTS:
            state.form = None
            return FormResult(
                "gave_up", _("Sorry, I still cannot find that order. Reply 人工 and an agent will look into it.")
            )
        state.form = form
        return FormResult("asked", reply)


class ProductForm:
    """Which product? (for an intent whose answer talks about one)."""

    name = "product"
    slot = "product"

    def ask(self) -> str:
        return _("Which product do you mean? Send me its name or model, e.g. %(example)s.")

    def start(self, state: ctx.DialogueState, intent: str, example: str) -> FormResult:
        state.form = {"name": self.name, "slot": self.slot, "intent": intent, "attempts": 0}
        return FormResult("asked", self.ask() % {"example": example or "X1"})

    def step(self, state: ctx.DialogueState, text: str, entities: ctx.Entities) -> FormResult:
        form = state.form or {}
        if entities.products:
            state.form = None
            return FormResult("resume", data={"intent": form.get("intent", ""), "product": entities.products[0]})
        attempts = int(form.get("attempts", 0)) + 1
        if attempts >= MAX_ATTEMPTS:
            state.form = None
            return FormResult("unrelated", "")
        state.form = {**form, "attempts": attempts}
        return FormResult("unrelated", _("Which product do you mean? Send me its name or model."))


FORMS: dict[str, Any] = {"logistics": LogisticsForm(), "product": ProductForm()}


def cancel(state: ctx.DialogueState) -> FormResult:
    state.form = None
    return FormResult("cancelled", _("OK, cancelled. What else can I help you with?"))
