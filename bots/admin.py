import json

from django import forms
from django.contrib import admin
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from bots.models import Channel, ChannelCursor, Conversation, Customer, Message, Outbox
from bots.privacy_admin import CustomerAdmin
from bots.services.channels import (
    KIND_KEYS,
    SECRET_KEYS,
    channel_secrets,
    channel_validate,
    setting_clean,
    webhook_path,
)
from core.admin import AuditedModelAdmin
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
    list_display = ["name", "slug", "kind", "enabled", "webhook", "created_at"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name", "slug"]
    readonly_fields = ["webhook"]
    inlines = [ChannelCursorInline]

    def get_fieldsets(self, request, obj=None):
        return [
            (None, {"fields": ["kind", "slug", "name", "enabled", "webhook", "settings"]}),
            (_("Secrets (write-only)"), {"fields": [key for key, _label, _help in SECRET_FIELDS] + ["clear_secrets"]}),
        ]

    @admin.display(description=_("webhook URL"))
    def webhook(self, obj):
        return webhook_path(obj) if obj and obj.pk else "-"


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


@admin.register(Outbox)
class OutboxAdmin(AuditedModelAdmin):
    list_display = ["id", "channel", "status", "attempts", "next_attempt_at", "last_error", "sent_at"]
    list_filter = ["status", "channel"]
    readonly_fields = [f.name for f in Outbox._meta.fields]

    def has_add_permission(self, request):
        return False
