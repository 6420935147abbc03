"""The Customer admin (registered from ``bots/admin.py``): personal fields encrypted at rest, search by phone
through the blind index, the PIPL export and erasure actions, and an audit entry whenever a customer's personal
data is shown on the change page."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _

from bots import pii
from bots.models import Customer
from bots.services import privacy
from core.admin import AuditedModelAdmin
from core.errors import ApplicationError


def _mask(phone: str) -> str:
    digits = pii.phone_normalize(phone)
    if not digits:
        return "-"
    return digits[:3] + "****" + digits[-4:] if len(digits) >= 8 else "****"


class PhoneSearchMixin:
    """Admin search that also finds customers by phone number through the blind index (phones are encrypted, so
    SQL cannot search them); for any ModelAdmin of ``bots.Customer`` or a proxy of it."""

    def get_search_results(self, request, queryset, search_term):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        index = pii.phone_search_index(search_term)
        if index:
            results = results | queryset.filter(phone_index=index)
        return results, may_have_duplicates


class CustomerAdmin(PhoneSearchMixin, AuditedModelAdmin):
    list_display = ["id", "nickname", "channel", "external_id", "phone_masked", "unsubscribed_at", "erased_at"]
    list_filter = [
        "channel",
        ("unsubscribed_at", admin.EmptyFieldListFilter),
        ("erased_at", admin.EmptyFieldListFilter),
    ]
    search_fields = ["=external_id"]
    search_help_text = _("Exact external id, or a phone number (any format).")
    fields = [
        "channel",
        "external_id",
        "nickname",
        "phone",
        "real_name",
        "address",
        "unsubscribed_at",
        "erased_at",
        "created_at",
    ]
    readonly_fields = ["channel", "external_id", "erased_at", "created_at"]
    actions = ["export_customer_data", "erase_customer_data"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("channel")

    def has_add_permission(self, request):
        return False  # customers come from channels

    def has_export_permission(self, request):
        return request.user.has_perm("bots.export_customer")

    def has_erase_permission(self, request):
        return request.user.has_perm("bots.erase_customer")

    @admin.display(description=_("phone"))
    def phone_masked(self, obj):
        return _mask(obj.phone)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        if request.method == "GET" and getattr(response, "status_code", 0) == 200 and str(object_id).isdigit():
            customer = Customer.objects.filter(pk=int(object_id)).first()
            if customer is not None:
                shown = [f for f in privacy.PII_FIELDS if getattr(customer, f)]
                privacy.customer_pii_view_record(
                    customer_id=customer.pk, actor=request.user, fields=shown, via="admin", request=request
                )
        return response

    @admin.action(description=_("Export personal data (ZIP)"), permissions=["export"])
    def export_customer_data(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True)[:2])
        if len(ids) != 1:
            self.message_user(request, _("Choose exactly one customer to export."), messages.WARNING)
            return None
        data = privacy.customer_export(customer_id=ids[0], actor=request.user, request=request)
        response = HttpResponse(data, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="customer-{ids[0]}.zip"'
        return response

    @admin.action(description=_("Erase personal data (PIPL)…"), permissions=["erase"])
    def erase_customer_data(self, request, queryset):
        customers = list(queryset.select_related("channel").order_by("pk")[:100])
        reason = (request.POST.get("reason") or "").strip()
        if request.POST.get("confirm") == "yes" and reason:
            done = 0
            for customer in customers:
                try:
                    privacy.customer_erase(customer_id=customer.pk, actor=request.user, reason=reason, request=request)
                    done += 1
                except ApplicationError as exc:
                    self.message_user(request, f"#{customer.pk}: {exc.message}", messages.ERROR)
            self.message_user(
                request, _("Erased the personal data of %(n)d customer(s).") % {"n": done}, messages.SUCCESS
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Erase personal data"),
            "customers": customers,
            "reason_missing": request.POST.get("confirm") == "yes",
        }
        return TemplateResponse(request, "admin/bots/customer/erase_confirm.html", context)
