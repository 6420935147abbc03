"""Read-only views of the rollups (for checking a dashboard number), with an action to rebuild days."""

from django.contrib import admin, messages
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from analytics import services
from analytics.models import DailyAgent, DailyStats, DailyTopic
from core.admin import audited_action


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(DailyStats)
class DailyStatsAdmin(ReadOnlyAdmin):
    list_display = [
        "day",
        "channel_id",
        "group_id",
        "conversations",
        "ended",
        "bot_solved",
        "handed_off",
        "converted",
        "messages_in",
        "messages_out",
        "decisions",
        "tickets",
        "computed_at",
    ]
    list_filter = ["day", "channel_id", "group_id"]
    date_hierarchy = "day"
    exclude = ["latency_ms", "bot_first_response_s", "bot_resolution_s", "human_first_response_s", "human_resolution_s"]
    actions = ["rebuild"]

    @audited_action(description=_("Rebuild the selected days now"), permissions=["view"])
    def rebuild(self, request, queryset):
        days = sorted(set(queryset.values_list("day", flat=True)))
        for day in days:
            services.rollup_day(day=day)
        self.message_user(request, gettext("%(n)d days rebuilt.") % {"n": len(days)}, messages.SUCCESS)


@admin.register(DailyTopic)
class DailyTopicAdmin(ReadOnlyAdmin):
    list_display = ["day", "kind", "key", "channel_id", "group_id", "count", "conversations", "converted"]
    list_filter = ["kind", "day"]
    search_fields = ["key"]
    date_hierarchy = "day"


@admin.register(DailyAgent)
class DailyAgentAdmin(ReadOnlyAdmin):
    list_display = ["day", "agent_id", "channel_id", "group_id", "tickets", "resolved", "replies", "csat_answers"]
    list_filter = ["day", "agent_id"]
    date_hierarchy = "day"
    exclude = ["first_response_s", "handle_s"]
