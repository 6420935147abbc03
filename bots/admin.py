import json

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from bots import selectors
from bots.limits_display import limit_alert_text, usage_text
from bots.models import Channel, ChannelCursor, Conversation, Customer, Message, Outbox
from bots.privacy_admin import CustomerAdmin
from bots.services import outbound
from bots.services.channels import (
    KIND_KEYS,
    SECRET_KEYS,
    channel_secrets,
    channel_validate,
    setting_clean,
    webhook_path,
)
from core.admin import AuditedModelAdmin, audited_action
from core.errors import ApplicationError

# write-only secret fields: (key, label, help); left empty, the stored value stays
SECRET_FIELDS = [
    ("token", _("token"), _("Official Account / WeCom callback Token.")),
    ("aes_key", _("EncodingAESKey"), _("43 characters; safe mode (Official Account) or WeCom callbacks.")),
    ("app_secret", _("AppSecret"), _("Official Account AppSecret.")),
    ("secret", _("secret"), _("WeCom customer service Secret, or the bridge's HMAC shared secret.")),
    ("gewe_token", _("gewechat token"), _("X-GEWE-TOKEN for a gewechat bridge.")),
]


def _secret_field(label, help_text) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        strip=True,
        help_text=help_text,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )


class ChannelAdminForm(forms.ModelForm):
    """Secrets are write-only: the form never shows them, an empty field keeps the stored value, and the
    "clear" boxes remove one."""

    token = _secret_field(*SECRET_FIELDS[0][1:])
    aes_key = _secret_field(*SECRET_FIELDS[1][1:])
    app_secret = _secret_field(*SECRET_FIELDS[2][1:])
    secret = _secret_field(*SECRET_FIELDS[3][1:])
    gewe_token = _secret_field(*SECRET_FIELDS[4][1:])
    clear_secrets = forms.MultipleChoiceField(
        label=_("clear secrets"),
        required=False,
        choices=[(key, label) for key, label, _help in SECRET_FIELDS],
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = Channel
        fields = ["kind", "slug", "name", "enabled", "settings"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stored = channel_secrets(self.instance) if self.instance.pk else {}
        for key, _label, help_text in SECRET_FIELDS:
            state = _("currently set") if stored.get(key) else _("not set")
            self.fields[key].help_text = format_html("{} ({}). {}", help_text, state, _("Leave empty to keep it."))
        if self.instance.pk:
            self.fields["kind"].disabled = True  # webhooks, customers and cursors depend on it

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind") or self.instance.kind
        settings = cleaned.get("settings") or {}
        if not isinstance(settings, dict):
            self.add_error("settings", _("Settings must be a JSON object."))
            return cleaned
        secrets = channel_secrets(self.instance) if self.instance.pk else {}
        for key in cleaned.get("clear_secrets") or []:
            secrets.pop(key, None)
        try:
            misplaced = sorted(set(settings) & SECRET_KEYS)
            if misplaced:
                raise ApplicationError(
                    gettext("%(keys)s: put secrets in the secret fields, not in settings")
                    % {"keys": ", ".join(misplaced)}
                )
            known = set(KIND_KEYS.get(kind, ()))
            settings = {key: setting_clean(key, value) if key in known else value for key, value in settings.items()}
            for key, _label, _help in SECRET_FIELDS:
                if cleaned.get(key):
                    if key not in known:
                        raise ApplicationError(
                            gettext("%(keys)s does not apply to a %(kind)s channel") % {"keys": key, "kind": kind}
                        )
                    secrets[key] = setting_clean(key, cleaned[key])
            channel_validate(kind=kind, settings=settings, secrets=secrets)
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from None
        cleaned["settings"] = settings
        self._secrets = secrets
        return cleaned

    def save(self, commit=True):
        self.instance.secrets = json.dumps(self._secrets, ensure_ascii=False, sort_keys=True) if self._secrets else ""
        return super().save(commit=commit)


class ChannelCursorInline(admin.TabularInline):
    model = ChannelCursor
    fields = ["key", "cursor", "pages", "updated_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = _("sync cursors (WeCom customer service)")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Channel)
class ChannelAdmin(AuditedModelAdmin):
    form = ChannelAdminForm
    list_display = ["name", "slug", "kind", "enabled", "webhook", "sending_limit", "created_at"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name", "slug"]
    readonly_fields = ["webhook", "sending_limit"]
    inlines = [ChannelCursorInline]

    def get_fieldsets(self, request, obj=None):
        return [
            (None, {"fields": ["kind", "slug", "name", "enabled", "webhook", "sending_limit", "settings"]}),
            (_("Secrets (write-only)"), {"fields": [key for key, _label, _help in SECRET_FIELDS] + ["clear_secrets"]}),
        ]

    @admin.display(description=_("webhook URL"))
    def webhook(self, obj):
        return webhook_path(obj) if obj and obj.pk else "-"

    @admin.display(description=_("sending limit (last hour)"))
    def sending_limit(self, obj):
        if not obj or not obj.pk:
            return "-"
        usage = selectors.channel_limits_usage(channels=[obj])[obj.pk]
        if usage is not None and usage.alerting:
            return format_html('<strong class="kefu-limit-alert">{}</strong>', usage_text(usage))
        return usage_text(usage)

    def changelist_view(self, request, extra_context=None):
        if request.method == "GET":
            for entry in selectors.channel_limit_alerts():
                messages.warning(request, limit_alert_text(entry))
        return super().changelist_view(request, extra_context)


# personal data, phone search by blind index, PIPL export/erase actions: bots/privacy_admin.py
admin.site.register(Customer, CustomerAdmin)


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
class ConversationAdmin(AuditedModelAdmin):
    list_display = ["id", "customer", "channel", "status", "last_message_at"]
    list_filter = ["status", "channel"]
    readonly_fields = ["customer", "channel", "created_at", "last_message_at", "resolved_at"]
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(AuditedModelAdmin):
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


class OutboxReasonFilter(admin.SimpleListFilter):
    """Filter by ``Outbox.reason`` with the operators' labels (codes of permanent send errors as they are)."""

    title = _("reason")
    parameter_name = "reason"

    def lookups(self, request, model_admin):
        known = list(outbound.REASON_LABELS)
        stored = Outbox.objects.exclude(reason="").values_list("reason", flat=True).distinct().order_by("reason")
        others = [code for code in stored[:50] if code not in outbound.REASON_LABELS]
        return [("-", _("(none)"))] + [(code, outbound.reason_label(code)) for code in known + others]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        return queryset.filter(reason="" if value == "-" else value)


RETRYABLE_STATUSES = (Outbox.Status.DEAD, Outbox.Status.BLOCKED, Outbox.Status.FAILED)


@admin.register(Outbox)
class OutboxAdmin(AuditedModelAdmin):
    list_display = ["id", "channel", "status", "reason_text", "attempts", "next_attempt_at", "last_error", "sent_at"]
    list_filter = ["status", OutboxReasonFilter, "channel"]
    readonly_fields = [f.name for f in Outbox._meta.fields]
    actions = ["send_again"]

    def has_add_permission(self, request):
        return False

    @admin.display(description=_("reason"), ordering="reason")
    def reason_text(self, obj):
        return outbound.reason_label(obj.reason) if obj.reason else "-"

    @audited_action(description=_("Send again (dead, blocked or failed entries)"), permissions=["change"])
    def send_again(self, request, queryset):
        retried, skipped = 0, 0
        for pk, status in queryset.values_list("pk", "status"):
            if status not in RETRYABLE_STATUSES:
                skipped += 1
                continue
            try:
                outbound.outbox_retry(outbox_id=pk)
            except ApplicationError:
                skipped += 1
                continue
            retried += 1
        if retried:
            self.message_user(
                request, gettext("%(count)s entries queued to be sent again.") % {"count": retried}, messages.SUCCESS
            )
        if skipped:
            self.message_user(
                request,
                gettext("%(count)s entries skipped: only dead, blocked or failed entries can be sent again.")
                % {"count": skipped},
                messages.WARNING,
            )
