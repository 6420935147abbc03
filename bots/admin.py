import json

from django.contrib import admin
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from bots.models import Channel, Conversation, Customer, Message, Outbox


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "kind", "enabled", "created_at"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name", "slug"]
    exclude = ["secrets"]


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["id", "nickname", "channel", "external_id", "created_at"]
    list_filter = ["channel"]
    search_fields = ["external_id"]


class MessageInline(admin.TabularInline):
    model = Message
    fields = ["created_at", "direction", "sender", "type", "content", "status"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["id", "customer", "channel", "status", "last_message_at"]
    list_filter = ["status", "channel"]
    readonly_fields = ["customer", "channel", "created_at", "last_message_at", "resolved_at"]
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["id", "conversation", "direction", "sender", "type", "short_content", "status", "created_at"]
    list_filter = ["direction", "sender", "type", "status", "channel"]
    readonly_fields = [f.name for f in Message._meta.fields if f.name != "trace"] + ["trace_pretty"]
    exclude = ["trace"]

    @admin.display(description=_("content"))
    def short_content(self, obj):
        return (obj.content or "")[:60]

    @admin.display(description=_("decision trace"))
    def trace_pretty(self, obj):
        if not obj.trace:
            return "-"
        return format_html("<pre>{}</pre>", json.dumps(obj.trace, ensure_ascii=False, indent=2))

    def has_add_permission(self, request):
        return False


@admin.register(Outbox)
class OutboxAdmin(admin.ModelAdmin):
    list_display = ["id", "channel", "status", "attempts", "next_attempt_at", "last_error", "sent_at"]
    list_filter = ["status", "channel"]
    readonly_fields = [f.name for f in Outbox._meta.fields]

    def has_add_permission(self, request):
        return False
