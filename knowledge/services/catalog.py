"""Product catalogue, synonyms and demo orders: writes move ``kefu:ver:catalog`` after commit."""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext as _

from knowledge import context as ctx
from knowledge import versions
from knowledge.models import DemoOrder, Product, Synonym


def _changed() -> None:
    transaction.on_commit(lambda: versions.bump("catalog"))


@transaction.atomic
def product_save(*, product: Product) -> Product:
    product.full_clean()
    product.save()
    _changed()
    return product


@transaction.atomic
def product_delete(*, product: Product) -> None:
    product.delete()
    _changed()


@transaction.atomic
def synonym_save(*, synonym: Synonym) -> Synonym:
    synonym.full_clean()
    synonym.save()
    _changed()
    return synonym


@transaction.atomic
def synonym_delete(*, synonym: Synonym) -> None:
    synonym.delete()
    _changed()


def catalog_changed() -> None:
    _changed()


def demo_order_lookup(order_no: str) -> ctx.OrderInfo | None:
    """The order lookup over the demo's ``DemoOrder`` table (registered in ``knowledge.apps``)."""
    order = DemoOrder.objects.filter(order_no__iexact=order_no.strip()).first()
    if order is None:
        return None
    if order.status == DemoOrder.Status.PAID:
        event = order.last_event or _("Waiting to be shipped; paid orders leave the warehouse within 48 hours.")
    else:
        event = order.last_event
    return ctx.OrderInfo(
        order_no=order.order_no,
        status=str(order.get_status_display()),
        items=order.items,
        carrier=order.carrier,
        tracking_no=order.tracking_no,
        last_event=event,
    )
