"""Orders import/export (CSV, xlsx) in the admin, with django-import-export.

Columns: ``number`` (the key: a known number updates the order), ``customer`` (Kefu customer id) *or*
``channel`` (channel slug) + ``external_id`` (the customer's id on that channel, e.g. an OpenID),
``amount``, ``paid_at`` (e.g. ``2026-03-01 14:30``, local time), ``items`` (JSON list, optional),
``status`` (pending, paid, shipped, completed, refunded, cancelled; default paid).
Rows are validated like the API (paid orders need ``paid_at``, amounts are not negative); each order
belongs to its customer's person; a real import requests an RFM recompute.
"""

from __future__ import annotations

from import_export import fields, resources, widgets

from bots.models import Channel, Customer
from routing.models import Order

DATETIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M")


class _DateTimeWidget(widgets.DateTimeWidget):
    def __init__(self) -> None:
        super().__init__()
        self.formats = DATETIME_FORMATS


class OrderResource(resources.ModelResource):
    customer = fields.Field(attribute="customer", column_name="customer", widget=widgets.ForeignKeyWidget(Customer))
    paid_at = fields.Field(attribute="paid_at", column_name="paid_at", widget=_DateTimeWidget())
    items = fields.Field(attribute="items", column_name="items", widget=widgets.JSONWidget())

    class Meta:
        model = Order
        fields = ("number", "customer", "amount", "paid_at", "items", "status")
        export_order = fields
        import_id_fields = ("number",)
        clean_model_instances = True
        skip_unchanged = True
        report_skipped = False

    def before_import_row(self, row, **kwargs):
        if not row.get("customer") and row.get("channel") and row.get("external_id"):
            customer_id = (
                Customer.objects.filter(
                    channel__in=Channel.objects.filter(slug=str(row["channel"]).strip()),
                    external_id=str(row["external_id"]).strip(),
                )
                .values_list("id", flat=True)
                .first()
            )
            if customer_id is None:
                raise ValueError(f"unknown customer {row['channel']}/{row['external_id']}")
            row["customer"] = customer_id
        if not row.get("status"):
            row["status"] = Order.Status.PAID
        if row.get("items") in (None, ""):
            row["items"] = "[]"

    def import_instance(self, instance, row, **kwargs):
        super().import_instance(instance, row, **kwargs)
        if instance.customer_id:
            from routing.services import person_for_customer

            instance.person = person_for_customer(customer_id=instance.customer_id)

    def after_import(self, dataset, result, **kwargs):
        super().after_import(dataset, result, **kwargs)
        if not kwargs.get("dry_run") and not result.has_errors():
            from routing.services import rfm_recompute_request

            rfm_recompute_request()
