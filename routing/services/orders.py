"""Orders: created or updated by order number (the API, the admin import and the demo use this)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from core.errors import ApplicationError
from routing.models import Order
from routing.services.people import person_for_customer


@transaction.atomic
def order_upsert(
    *,
    number: str,
    customer_id: int,
    amount: Decimal,
    paid_at: dt.datetime | None = None,
    items: list[Any] | None = None,
    status: str = Order.Status.PAID,
) -> tuple[Order, bool]:
    """Create the order, or update it when the number is known (shops send an order again when its status
    changes). Returns ``(order, created)``. The order belongs to the customer's person, created on first need.

    Errors: ``order_customer_mismatch`` when the number belongs to another customer, ``invalid`` when a
    field is wrong (paid statuses need ``paid_at``, the amount is not negative, items are a list).
    """
    number = (number or "").strip()
    if not number:
        raise ApplicationError("order number is required", code="invalid", extra={"fields": {"number": ["required"]}})
    order = Order.objects.select_for_update().filter(number=number).first()
    created = order is None
    if order is not None and order.customer_id != customer_id:
        raise ApplicationError(
            "this order number belongs to another customer", code="order_customer_mismatch", status=409
        )
    if order is None:
        person = person_for_customer(customer_id=customer_id)
        order = Order(number=number, customer_id=customer_id, person=person)
    order.amount = amount
    order.paid_at = paid_at
    order.items = list(items or [])
    order.status = status
    try:
        order.full_clean(exclude=["customer", "person"], validate_unique=False)
    except ValidationError as exc:
        raise ApplicationError("invalid order", code="invalid", extra={"fields": exc.message_dict}) from exc
    try:
        with transaction.atomic():
            order.save()
    except IntegrityError as exc:  # the same number created concurrently
        raise ApplicationError("duplicate order number", code="duplicate_order", status=409) from exc
    return order, created
