"""Admin of the sensitive-word lists (imported by ``core.admin``): lists with their words inline, import of a
UTF-8 text file (one word per line, optionally ``word<TAB>category<TAB>action``) and export back, words on their
own page with CSV/XLSX import-export, "test a text", and the hits for operators to review. Every change is
audited (``AuditedModelAdmin``; the text import/export views record themselves) and moves the list's version,
so every worker reloads (``core.sensitive``)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from import_export import fields, resources, widgets
from import_export.admin import ImportExportModelAdmin
from import_export.formats import base_formats

from core import audit, sensitive
from core.admin import AuditedModelAdmin, audited_action
from core.models import SensitiveAction, SensitiveHit, SensitiveWord, SensitiveWordList

INLINE_LIMIT = 200  # larger lists are edited on the words page (filtered by list), not inline
MAX_FILE_BYTES = 5 * 1024 * 1024


# --- import/export of words (CSV/XLSX, django-import-export) ---------------------------------------------------


class WordListWidget(widgets.ForeignKeyWidget):
    """A list by name, created (enabled, both ways) when missing."""

    def __init__(self) -> None:
        super().__init__(SensitiveWordList, field="name")

    def clean(self, value, row=None, **kwargs):
        name = (value or "").strip()[:100]
        if not name:
            raise ValueError(gettext("A word needs a list name."))
        word_list, _created = SensitiveWordList.objects.get_or_create(name=name)
        return word_list


class SensitiveWordResource(resources.ModelResource):
    word_list = fields.Field(attribute="word_list", column_name="word_list", widget=WordListWidget())

    class Meta:
        model = SensitiveWord
        fields = ("word_list", "text", "category", "action", "enabled")
        import_id_fields = ("word_list", "text")
        clean_model_instances = True
        use_transactions = True  # a file with one bad row imports nothing
        skip_unchanged = True
        report_skipped = False

    def before_import(self, dataset, **kwargs):
        self._touched: set[int] = set()

    def after_save_instance(self, instance, row, **kwargs):
        self._touched.add(instance.word_list_id)

    def after_import(self, dataset, result, **kwargs):
        if not kwargs.get("dry_run"):
            for list_id in getattr(self, "_touched", ()):
                sensitive.word_list_changed(word_list_id=list_id)


# --- lists ---------------------------------------------------------------------------------------------------------


class SensitiveWordInline(admin.TabularInline):
    model = SensitiveWord
    fields = ["text", "category", "action", "enabled"]
    extra = 3


class ImportTextForm(forms.Form):
    file = forms.FileField(
        label=_("text file (UTF-8)"),
        help_text=_("One word per line, or word<TAB>category<TAB>action. Lines starting with # are skipped."),
    )
    default_category = forms.CharField(label=_("category for lines without one"), max_length=50, required=False)
    default_action = forms.ChoiceField(
        label=_("action for lines without one"), choices=SensitiveAction.choices, initial=SensitiveAction.FLAG
    )
    replace = forms.BooleanField(label=_("delete the list's words that are not in the file"), required=False)


class TestTextForm(forms.Form):
    text = forms.CharField(label=_("text"), max_length=5000, widget=forms.Textarea(attrs={"rows": 3}))
    direction = forms.ChoiceField(
        label=_("direction"),
        choices=[(sensitive.INBOUND, _("Customer message")), (sensitive.OUTBOUND, _("Bot or agent reply"))],
    )


@admin.register(SensitiveWordList)
class SensitiveWordListAdmin(AuditedModelAdmin):
    list_display = ["name", "enabled", "direction", "pinyin_initials", "word_count", "version", "updated_at"]
    list_filter = ["enabled", "direction"]
    list_editable = ["enabled"]
    search_fields = ["name"]
    fields = ["name", "enabled", "direction", "pinyin_initials", "allow_phrases", "version", "words_link"]
    readonly_fields = ["version", "words_link"]
    inlines = [SensitiveWordInline]
    change_list_template = "admin/core/sensitivewordlist/change_list.html"
    change_form_template = "admin/core/sensitivewordlist/change_form.html"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(n_words=Count("words"))

    @admin.display(description=_("words"), ordering="n_words")
    def word_count(self, obj) -> int:
        return obj.n_words

    @admin.display(description=_("all words"))
    def words_link(self, obj) -> str:
        if obj is None or obj.pk is None:
            return "—"
        url = reverse("admin:core_sensitiveword_changelist") + f"?word_list__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, gettext("Edit, filter and export the words of this list"))

    def get_inline_instances(self, request, obj=None):
        if obj is not None and obj.pk and SensitiveWord.objects.filter(word_list=obj).count() > INLINE_LIMIT:
            return []  # thousands of rows do not fit a form: the words page pages them
        return super().get_inline_instances(request, obj)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)  # after the inline words (list_editable too)
        sensitive.word_list_changed(word_list_id=form.instance.pk)

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        sensitive.lists_changed()

    def delete_queryset(self, request, queryset):
        super().delete_queryset(request, queryset)
        sensitive.lists_changed()

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("test/", view(self.test_view), name="core_sensitive_test"),
            path("<int:pk>/import-text/", view(self.import_text_view), name="core_sensitive_import"),
            path("<int:pk>/export-text/", view(self.export_text_view), name="core_sensitive_export"),
            *super().get_urls(),
        ]

    def import_text_view(self, request, pk: int):
        word_list = get_object_or_404(SensitiveWordList, pk=pk)
        if not self.has_change_permission(request, word_list):
            raise PermissionDenied
        form = ImportTextForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            text = None
            if upload.size <= MAX_FILE_BYTES:
                try:
                    text = upload.read().decode("utf-8-sig")
                except UnicodeDecodeError:
                    form.add_error("file", gettext("The file is not UTF-8 text."))
            else:
                form.add_error("file", gettext("The file is larger than 5 MB."))
            if text is not None:
                result = sensitive.words_import(
                    word_list=word_list,
                    text=text,
                    default_category=form.cleaned_data["default_category"],
                    default_action=form.cleaned_data["default_action"],
                    replace=form.cleaned_data["replace"],
                )
                if result.errors:
                    form.add_error("file", gettext("Nothing was imported: ") + "; ".join(result.errors[:20]))
                else:
                    counts = {
                        "created": result.created,
                        "updated": result.updated,
                        "unchanged": result.unchanged,
                        "deleted": result.deleted,
                    }
                    audit.audit_record(action=audit.Action.IMPORT, target=word_list, after=counts, request=request)
                    self.message_user(
                        request,
                        gettext(
                            "Imported: %(created)d new, %(updated)d changed, %(unchanged)d unchanged, "
                            "%(deleted)d deleted."
                        )
                        % counts,
                        messages.SUCCESS,
                    )
                    return HttpResponseRedirect(reverse("admin:core_sensitivewordlist_change", args=[word_list.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Import words into %(name)s") % {"name": word_list.name},
            "form": form,
            "original": word_list,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/core/sensitivewordlist/import_text.html", context)

    def export_text_view(self, request, pk: int):
        word_list = get_object_or_404(SensitiveWordList, pk=pk)
        if not self.has_view_permission(request, word_list):
            raise PermissionDenied
        body = sensitive.words_export(word_list=word_list)
        audit.audit_record(
            action=audit.Action.EXPORT, target=word_list, after={"rows": body.count("\n")}, request=request
        )
        response = HttpResponse(body, content_type="text/plain; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="sensitive-words-{word_list.pk}.txt"'
        return response

    def test_view(self, request):
        """Scan a text with the lists every worker uses now (after the last change was committed)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = TestTextForm(request.POST or None)
        result = None
        if request.method == "POST" and form.is_valid():
            result = sensitive.text_scan(form.cleaned_data["text"], form.cleaned_data["direction"])
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Test a text"),
            "form": form,
            "result": result,
            "rows": [{"hit": h, "span": result.text[h.start : h.end]} for h in result.hits] if result else [],
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/core/sensitivewordlist/test_text.html", context)


# --- words -----------------------------------------------------------------------------------------------------------


@admin.register(SensitiveWord)
class SensitiveWordAdmin(AuditedModelAdmin, ImportExportModelAdmin):
    resource_classes = [SensitiveWordResource]
    formats = [base_formats.CSV, base_formats.XLSX]
    list_display = ["text", "word_list", "category", "action", "enabled"]
    list_filter = ["word_list", "action", "enabled", "category"]
    list_editable = ["action", "enabled"]
    search_fields = ["text", "category"]
    list_select_related = ["word_list"]
    list_per_page = 200

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        sensitive.word_list_changed(word_list_id=obj.word_list_id)
        if change and "word_list" in form.changed_data and form.initial.get("word_list"):
            sensitive.word_list_changed(word_list_id=form.initial["word_list"])

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        sensitive.word_list_changed(word_list_id=obj.word_list_id)

    def delete_queryset(self, request, queryset):
        list_ids = set(queryset.values_list("word_list_id", flat=True))
        super().delete_queryset(request, queryset)
        for list_id in list_ids:
            sensitive.word_list_changed(word_list_id=list_id)


# --- hits --------------------------------------------------------------------------------------------------------------


@admin.register(SensitiveHit)
class SensitiveHitAdmin(AuditedModelAdmin):
    list_display = ["created_at", "direction", "action", "words_hit", "sender", "message_link", "reviewed"]
    list_filter = ["reviewed", "direction", "action", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["=message_id", "=conversation_id"]
    date_hierarchy = "created_at"
    list_per_page = 100
    actions = ["mark_reviewed"]
    readonly_fields = [
        "created_at",
        "direction",
        "action",
        "words_hit",
        "sender",
        "conversation_id",
        "message_link",
        "outbox_id",
        "reviewed",
        "reviewed_by",
        "reviewed_at",
    ]
    fields = readonly_fields

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("words hit"))
    def words_hit(self, obj) -> str:
        return "、".join(f"{w.get('word')}（{w.get('category') or '-'}，{w.get('action')}）" for w in (obj.words or []))

    @admin.display(description=_("message"))
    def message_link(self, obj) -> str:
        if not obj.message_id:
            return "—"
        try:
            url = reverse("admin:bots_message_change", args=[obj.message_id])
        except NoReverseMatch:
            return str(obj.message_id)
        return format_html('<a href="{}">#{}</a>', url, obj.message_id)

    @audited_action(description=_("Mark the selected hits as reviewed"), permissions=["change"])
    def mark_reviewed(self, request, queryset):
        count = sensitive.hits_review(
            hit_ids=queryset.values_list("pk", flat=True), reviewer=request.user.get_username()
        )
        self.message_user(request, gettext("%(n)d hits marked as reviewed.") % {"n": count}, messages.SUCCESS)
