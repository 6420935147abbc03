"""Admin of the routing app (Chinese UI through gettext). Writes with side effects go through services:
merging customers, RFM recompute, order import. Tickets are read-only here (agents work in the console)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count, Q
from django.template.loader import render_to_string
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from import_export.admin import ImportExportModelAdmin

from bots.privacy_admin import PhoneSearchMixin
from core.admin import AuditedModelAdmin, audited_action
from core.errors import ApplicationError
from routing import selectors, services
from routing.models import (
    AgentGroup,
    AgentProfile,
    BusinessHours,
    CannedReply,
    ChannelCustomer,
    CustomerLink,
    Holiday,
    Order,
    Person,
    RfmScore,
    RoutingRule,
    Tag,
    Ticket,
    TicketEvent,
)
from routing.resources import OrderResource


def _card_html(customer_id: int | None) -> str:
    if customer_id is None:
        return "-"
    return render_to_string("routing/admin/customer_card.html", {"card": selectors.customer_card(customer_id)})


# --- customers -------------------------------------------------------------------------------------------------


@admin.register(Tag)
class TagAdmin(AuditedModelAdmin):
    list_display = ["name", "color", "people_count"]
    search_fields = ["name"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(n_people=Count("people"))

    @admin.display(description=_("customers"), ordering="n_people")
    def people_count(self, obj):
        return obj.n_people


class CustomerLinkInline(admin.TabularInline):
    model = CustomerLink
    fields = ["customer", "linked_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Person)
class PersonAdmin(AuditedModelAdmin):
    list_display = ["id", "__str__", "tier", "score", "accounts", "created_at"]
    list_filter = ["rfm__tier", "rfm__segment", "tags"]
    filter_horizontal = ["tags"]
    fields = ["name", "note", "tags", "card"]
    readonly_fields = ["card"]
    inlines = [CustomerLinkInline]
    actions = ["merge_selected"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("rfm").annotate(n_accounts=Count("links"))

    @admin.display(description=_("tier"), ordering="rfm__tier")
    def tier(self, obj):
        return getattr(getattr(obj, "rfm", None), "tier", "-")

    @admin.display(description=_("RFM score"), ordering="rfm__score")
    def score(self, obj):
        return getattr(getattr(obj, "rfm", None), "score", "-")

    @admin.display(description=_("channel accounts"), ordering="n_accounts")
    def accounts(self, obj):
        return obj.n_accounts

    @admin.display(description=_("customer card"))
    def card(self, obj):
        first = obj.links.order_by("customer_id").values_list("customer_id", flat=True).first() if obj.pk else None
        return _card_html(first)

    @audited_action(description=_("Merge selected customers"), permissions=["change"])
    def merge_selected(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        if len(ids) < 2:
            self.message_user(request, _("Choose at least two customers to merge."), messages.WARNING)
            return
        person = services.persons_merge(person_ids=ids)
        self.message_user(request, _("Merged %(n)s customers into %(person)s.") % {"n": len(ids), "person": person})


@admin.register(ChannelCustomer)
class ChannelCustomerAdmin(PhoneSearchMixin, AuditedModelAdmin):  # search: external id or phone (blind index)
    list_display = ["id", "nickname", "channel", "external_id", "person", "tier"]
    list_filter = ["channel"]
    search_fields = ["external_id"]
    fields = ["channel", "external_id", "nickname", "person", "card"]
    readonly_fields = fields
    actions = ["merge_selected"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("channel", "routing_link__person__rfm")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("customer profile"))
    def person(self, obj):
        link = getattr(obj, "routing_link", None)
        return link.person_id if link else "-"

    @admin.display(description=_("tier"))
    def tier(self, obj):
        link = getattr(obj, "routing_link", None)
        rfm = getattr(link.person, "rfm", None) if link else None
        return rfm.tier if rfm else "-"

    @admin.display(description=_("customer card"))
    def card(self, obj):
        return _card_html(obj.pk)

    @audited_action(description=_("Merge selected customers"), permissions=["view"])
    def merge_selected(self, request, queryset):
        if not request.user.has_perm("routing.change_person"):
            self.message_user(request, _("You may not merge customers."), messages.ERROR)
            return
        try:
            person = services.customers_merge(customer_ids=list(queryset.values_list("pk", flat=True)))
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.WARNING)
            return
        self.message_user(
            request, _("The selected customers are now one customer profile: %(person)s.") % {"person": person}
        )


@admin.register(Order)
class OrderAdmin(AuditedModelAdmin, ImportExportModelAdmin):
    resource_classes = [OrderResource]
    list_display = ["number", "customer", "person", "amount", "status", "paid_at"]
    list_filter = ["status"]
    search_fields = ["number"]
    date_hierarchy = "paid_at"
    raw_id_fields = ["customer"]
    readonly_fields = ["person", "created_at", "updated_at"]

    def save_model(self, request, obj, form, change):
        if not obj.person_id or "customer" in form.changed_data:
            obj.person = services.person_for_customer(customer_id=obj.customer_id)
        super().save_model(request, obj, form, change)


@admin.register(RfmScore)
class RfmScoreAdmin(AuditedModelAdmin):
    list_display = [
        "person",
        "tier",
        "segment_label",
        "score",
        "r",
        "f",
        "m",
        "frequency",
        "monetary",
        "recency_days",
        "computed_at",
    ]
    list_filter = ["tier", "segment"]
    readonly_fields = [f.name for f in RfmScore._meta.fields]
    actions = ["recompute"]

    @admin.display(description=_("segment"), ordering="segment")
    def segment_label(self, obj):
        from routing.scoring import SEGMENTS

        return SEGMENTS.get(obj.segment, obj.segment)

    def has_add_permission(self, request):
        return False

    @audited_action(description=_("Recompute the RFM scores of all customers"), permissions=["view"])
    def recompute(self, request, queryset):
        if services.rfm_recompute_request():
            self.message_user(request, _("RFM recompute queued."))
        else:
            self.message_user(request, _("An RFM recompute was queued recently; it will pick up every change."))


# --- agents ------------------------------------------------------------------------------------------------


class BusinessHoursInline(admin.TabularInline):
    model = BusinessHours
    extra = 0


class HolidayInline(admin.TabularInline):
    model = Holiday
    extra = 0


@admin.register(AgentGroup)
class AgentGroupAdmin(AuditedModelAdmin):
    list_display = ["name", "slug", "is_default", "auto_assign", "sla_minutes", "open_now", "agents_count", "queued"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [BusinessHoursInline, HolidayInline]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_agents=Count("agents", distinct=True),
                n_queued=Count("tickets", filter=Q(tickets__status=Ticket.Status.QUEUED), distinct=True),
            )
        )

    @admin.display(description=_("open now"), boolean=True)
    def open_now(self, obj):
        return services.group_is_open(obj)

    @admin.display(description=_("agents"), ordering="n_agents")
    def agents_count(self, obj):
        return obj.n_agents

    @admin.display(description=_("queued"), ordering="n_queued")
    def queued(self, obj):
        return obj.n_queued


@admin.register(Holiday)
class HolidayAdmin(AuditedModelAdmin):
    list_display = ["date", "name", "group"]
    list_filter = ["group"]
    date_hierarchy = "date"


@admin.register(AgentProfile)
class AgentProfileAdmin(AuditedModelAdmin):
    list_display = ["__str__", "user", "presence", "capacity", "load", "last_seen", "last_assigned_at"]
    list_filter = ["presence", "groups"]
    filter_horizontal = ["groups"]
    fields = ["user", "display_name", "groups", "capacity", "presence", "last_seen", "last_assigned_at"]
    readonly_fields = ["presence", "last_seen", "last_assigned_at"]
    raw_id_fields = ["user"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("user")
            .annotate(
                n_load=Count(
                    "user__assigned_tickets",
                    filter=Q(user__assigned_tickets__status__in=Ticket.WITH_AGENT),
                )
            )
        )

    @admin.display(description=_("open tickets"), ordering="n_load")
    def load(self, obj):
        return obj.n_load


@admin.register(RoutingRule)
class RoutingRuleAdmin(AuditedModelAdmin):
    list_display = ["position", "name", "enabled", "group", "priority", "sla_minutes", "triggers_handoff", "conditions"]
    list_display_links = ["name"]
    list_editable = ["position", "enabled"]
    list_filter = ["enabled", "group", "priority", "triggers_handoff"]
    fieldsets = [
        (None, {"fields": ["name", "position", "enabled"]}),
        (
            _("Conditions (all must hold; empty means any)"),
            {
                "fields": [
                    "tiers",
                    "segments",
                    ("score_min", "score_max"),
                    "reasons",
                    "intents",
                    "channel_kinds",
                    "channel_slugs",
                    "keywords",
                    "weekdays",
                    ("time_from", "time_to"),
                ]
            },
        ),
        (_("Actions"), {"fields": ["group", "priority", "sla_minutes", "triggers_handoff"]}),
    ]

    @admin.display(description=_("conditions"))
    def conditions(self, obj):
        parts = [
            f"{label}={value}"
            for label, value in (
                ("tier", obj.tiers),
                ("segment", obj.segments),
                ("reason", obj.reasons),
                ("intent", obj.intents),
                ("channel", obj.channel_kinds or obj.channel_slugs),
                ("keywords", obj.keywords),
            )
            if value
        ]
        if obj.score_min is not None or obj.score_max is not None:
            parts.append(
                f"score∈[{obj.score_min if obj.score_min is not None else ''},"
                f"{obj.score_max if obj.score_max is not None else ''}]"
            )
        if obj.time_from:
            parts.append(f"{obj.time_from:%H:%M}-{obj.time_to:%H:%M}")
        return "; ".join(parts) or "-"


# --- tickets ------------------------------------------------------------------------------------------------


class TicketEventInline(admin.TabularInline):
    model = TicketEvent
    fields = ["created_at", "kind", "actor", "from_status", "to_status", "group", "assignee", "text", "data"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Ticket)
class TicketAdmin(AuditedModelAdmin):
    list_display = [
        "id",
        "conversation",
        "status",
        "priority",
        "reason",
        "group",
        "assignee",
        "tier",
        "sla_due_at",
        "sla_flag",
        "created_at",
    ]
    list_filter = ["status", "priority", "reason", "group", "leave_message", "csat_score"]
    readonly_fields = [f.name for f in Ticket._meta.fields] + ["card"]
    inlines = [TicketEventInline]
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("group", "assignee", "conversation__customer")

    def has_add_permission(self, request):
        return False

    @admin.display(description=_("SLA breached"), boolean=True)
    def sla_flag(self, obj):
        return obj.sla_breached_at is not None

    @admin.display(description=_("customer card"))
    def card(self, obj):
        return _card_html(obj.customer_id)


@admin.register(CannedReply)
class CannedReplyAdmin(AuditedModelAdmin):
    list_display = ["shortcut", "title", "group", "enabled", "preview"]
    list_filter = ["group", "enabled"]
    search_fields = ["shortcut", "title", "text"]

    @admin.display(description=_("text"))
    def preview(self, obj):
        return format_html("{}", (obj.text or "")[:60])
