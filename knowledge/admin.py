"""Operators' admin for the knowledge app: every save goes through a service (version keys move after commit).

Besides the model pages: keyword rules, FAQs and products import/export CSV/XLSX; intents import training
examples (JSONL / CSV / Rasa nlu.yml) and start training; model versions show progress, metrics and the
confusion matrix, and are activated or rolled back; "Try a message" shows a decision with its trace.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST
from import_export.admin import ImportExportModelAdmin
from import_export.formats import base_formats

from core.admin import AuditedModelAdmin, audited_action
from core.audit import audit_record
from core.errors import ApplicationError
from knowledge import selectors, services
from knowledge.decision import DecisionContext
from knowledge.models import (
    AssociationRule,
    DemoOrder,
    Faq,
    FaqCategory,
    FaqQuestion,
    FaqRelation,
    Intent,
    IntentExample,
    IntentModel,
    KeywordRule,
    MiningRun,
    Product,
    Synonym,
    UnansweredCluster,
)
from knowledge.resources import FaqResource, KeywordRuleResource, ProductResource
from knowledge.services import intents as intent_service
from knowledge.services import mining

FORMATS = [base_formats.CSV, base_formats.XLSX]


# -- keyword rules ---------------------------------------------------------------------------------------


class TryForm(forms.Form):
    text = forms.CharField(label=_("message"), max_length=5000, widget=forms.Textarea(attrs={"rows": 3}))
    channel = forms.CharField(label=_("channel slug"), max_length=64, required=False)


@admin.register(KeywordRule)
class KeywordRuleAdmin(AuditedModelAdmin, ImportExportModelAdmin):
    resource_classes = [KeywordRuleResource]
    formats = FORMATS
    list_display = ["keyword", "name", "match_type", "priority", "enabled", "channels", "window", "updated_at"]
    list_filter = ["match_type", "enabled"]
    list_editable = ["priority", "enabled"]
    search_fields = ["keyword", "name", "reply"]
    fieldsets = [
        (None, {"fields": ["name", "match_type", "keyword", "reply", "priority", "enabled"]}),
        (_("Scope"), {"fields": ["channels", ("active_from", "active_until"), ("daily_start", "daily_end")]}),
    ]
    change_list_template = "admin/knowledge/keywordrule/change_list.html"

    @admin.display(description=_("active window"))
    def window(self, obj: KeywordRule) -> str:
        parts = []
        if obj.active_from or obj.active_until:
            parts.append(f"{obj.active_from or '…'} – {obj.active_until or '…'}")
        if obj.daily_start and obj.daily_end:
            parts.append(f"{obj.daily_start:%H:%M}-{obj.daily_end:%H:%M}")
        return "; ".join(parts) or "—"

    def save_model(self, request, obj, form, change):
        services.keyword_rule_save(rule=obj)

    def delete_model(self, request, obj):
        services.keyword_rule_delete(rule=obj)

    def delete_queryset(self, request, queryset):
        for rule in queryset:
            services.keyword_rule_delete(rule=rule)

    def get_urls(self):
        return [
            path("try/", self.admin_site.admin_view(self.try_view), name="knowledge_try"),
            *super().get_urls(),
        ]

    def try_view(self, request):
        """Run the decision pipeline on a message (no conversation: no context is read or written)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = TryForm(request.POST or None)
        decision = None
        if request.method == "POST" and form.is_valid():
            decision = services.decide(
                text=form.cleaned_data["text"],
                context=DecisionContext(
                    channel_slug=form.cleaned_data["channel"] or "", nickname=request.user.get_username()
                ),
            )
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Try a message"),
            "form": form,
            "decision": decision,
            "trace_json": json.dumps(decision.trace, ensure_ascii=False, indent=2) if decision else "",
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/knowledge/try.html", context)


# -- FAQ ---------------------------------------------------------------------------------------------------


@admin.register(FaqCategory)
class FaqCategoryAdmin(AuditedModelAdmin):
    list_display = ["name", "order", "faq_count"]
    list_editable = ["order"]
    search_fields = ["name"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(n_faqs=Count("faqs"))

    @admin.display(description=_("FAQs"), ordering="n_faqs")
    def faq_count(self, obj) -> int:
        return obj.n_faqs

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        services.faqs_changed()

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        services.faqs_changed()


class FaqQuestionInline(admin.TabularInline):
    model = FaqQuestion
    extra = 3


@admin.register(Faq)
class FaqAdmin(AuditedModelAdmin, ImportExportModelAdmin):
    resource_classes = [FaqResource]
    formats = FORMATS
    inlines = [FaqQuestionInline]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ["question", "category", "similar_count", "enabled", "valid_from", "valid_until", "updated_at"]
    list_filter = ["enabled", "category"]
    list_editable = ["enabled"]
    search_fields = ["question", "answer", "similar_questions__text"]
    fieldsets = [
        (None, {"fields": ["category", "question", "answer", "enabled"]}),
        (_("Media and validity"), {"fields": ["link_url", "image_url", ("valid_from", "valid_until")]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("category").annotate(n_similar=Count("similar_questions"))

    @admin.display(description=_("similar questions"), ordering="n_similar")
    def similar_count(self, obj) -> int:
        return obj.n_similar

    def save_model(self, request, obj, form, change):
        services.faq_save(faq=obj)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        services.faqs_changed()

    def delete_model(self, request, obj):
        services.faq_delete(faq=obj)

    def delete_queryset(self, request, queryset):
        for faq in queryset:
            services.faq_delete(faq=faq)


# -- catalogue -------------------------------------------------------------------------------------------


@admin.register(Product)
class ProductAdmin(AuditedModelAdmin, ImportExportModelAdmin):
    resource_classes = [ProductResource]
    formats = FORMATS
    list_display = ["name", "sku", "category", "price", "colors", "stock", "enabled"]
    list_filter = ["category", "enabled"]
    list_editable = ["price", "stock", "enabled"]
    search_fields = ["name", "sku", "aliases"]

    def save_model(self, request, obj, form, change):
        services.product_save(product=obj)

    def delete_model(self, request, obj):
        services.product_delete(product=obj)

    def delete_queryset(self, request, queryset):
        for product in queryset:
            services.product_delete(product=product)


@admin.register(Synonym)
class SynonymAdmin(AuditedModelAdmin):
    list_display = ["word", "synonyms", "updated_at"]
    search_fields = ["word", "synonyms"]

    def save_model(self, request, obj, form, change):
        services.synonym_save(synonym=obj)

    def delete_model(self, request, obj):
        services.synonym_delete(synonym=obj)

    def delete_queryset(self, request, queryset):
        for synonym in queryset:
            services.synonym_delete(synonym=synonym)


@admin.register(DemoOrder)
class DemoOrderAdmin(AuditedModelAdmin):
    list_display = ["order_no", "status", "items", "carrier", "tracking_no", "updated_at"]
    list_filter = ["status"]
    search_fields = ["order_no", "tracking_no"]


# -- intents ---------------------------------------------------------------------------------------------


class ExampleImportForm(forms.Form):
    file = forms.FileField(
        label=_("file"), help_text=_('JSONL lines {"text": ..., "label": ...}, CSV text,label, or Rasa nlu.yml.')
    )


class IntentExampleInline(admin.TabularInline):
    model = IntentExample
    extra = 3


@admin.register(Intent)
class IntentAdmin(AuditedModelAdmin):
    inlines = [IntentExampleInline]
    list_display = ["name", "description", "example_count", "form", "handoff", "enabled", "updated_at"]
    list_filter = ["enabled", "handoff", "form"]
    search_fields = ["name", "description", "examples__text"]
    change_list_template = "admin/knowledge/intent/change_list.html"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(n_examples=Count("examples"))

    @admin.display(description=_("examples"), ordering="n_examples")
    def example_count(self, obj) -> int:
        return obj.n_examples

    def save_model(self, request, obj, form, change):
        services.intent_save(intent=obj)

    def delete_model(self, request, obj):
        services.intent_delete(intent=obj)

    def delete_queryset(self, request, queryset):
        for intent in queryset:
            services.intent_delete(intent=intent)

    def get_urls(self):
        return [
            path("import/", self.admin_site.admin_view(self.import_view), name="knowledge_intent_import"),
            *super().get_urls(),
        ]

    def import_view(self, request):
        if not (self.has_add_permission(request) and request.user.has_perm("knowledge.add_intentexample")):
            raise PermissionDenied
        form = ExampleImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                report = services.intent_examples_import(content=upload.read(), filename=upload.name)
            except ApplicationError as exc:
                form.add_error("file", exc.message)
            else:
                audit_record(action="intent_import", after={"file": upload.name, **report.as_dict()}, request=request)
                self.message_user(
                    request,
                    gettext(
                        "Imported %(examples_created)d examples (%(examples_skipped)d already there), "
                        "%(intents_created)d new intents, %(synonyms)d synonym entries. Train a new model version "
                        "to use them."
                    )
                    % report.as_dict(),
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:knowledge_intent_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Import training examples"),
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/knowledge/intent/import.html", context)


def _train(request) -> None:
    try:
        model = services.intent_model_train_start(user=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        audit_record(action="model_train", target=model, after={"version": model.version}, request=request)
        messages.success(
            request,
            gettext("Version v%(version)d is queued for training; this page shows its progress.")
            % {"version": model.version},
        )


@admin.register(IntentModel)
class IntentModelAdmin(AuditedModelAdmin):
    list_display = ["__str__", "status", "progress_bar", "accuracy", "macro_f1", "n_examples", "active", "created_at"]
    list_filter = ["status", "active"]
    readonly_fields = [
        "version",
        "status",
        "active",
        "progress_bar",
        "progress_note",
        "error",
        "accuracy",
        "macro_f1",
        "n_examples",
        "labels",
        "started_at",
        "finished_at",
        "created_by",
    ]
    fields = readonly_fields[:4] + [
        "progress_note",
        "error",
        "accuracy",
        "macro_f1",
        "n_examples",
        "labels",
        "threshold",
        "margin",
        "started_at",
        "finished_at",
        "created_by",
    ]
    actions = ["activate_selected"]
    change_list_template = "admin/knowledge/intentmodel/change_list.html"
    change_form_template = "admin/knowledge/intentmodel/change_form.html"

    def get_queryset(self, request):
        return super().get_queryset(request).defer("blob", "vocabulary")

    def has_add_permission(self, request):
        return False

    @admin.display(description=_("progress"))
    def progress_bar(self, obj: IntentModel) -> str:
        return format_html(
            '<progress value="{}" max="100" title="{}"></progress> {}%', obj.progress, obj.progress_note, obj.progress
        )

    @admin.display(description=_("accuracy"))
    def accuracy(self, obj: IntentModel) -> str:
        value = (obj.metrics or {}).get("accuracy")
        return f"{value:.3f}" if isinstance(value, int | float) else "—"

    @admin.display(description=_("macro-F1"))
    def macro_f1(self, obj: IntentModel) -> str:
        value = (obj.metrics or {}).get("macro_f1")
        return f"{value:.3f}" if isinstance(value, int | float) else "—"

    def save_model(self, request, obj, form, change):
        intent_service.intent_model_settings_save(model=obj)

    @audited_action(description=_("Activate the selected version"), permissions=["change"])
    def activate_selected(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, gettext("Select exactly one version to activate."), messages.WARNING)
            return
        self._activate(request, queryset.first())

    def _activate(self, request, model: IntentModel) -> None:
        try:
            model = services.intent_model_activate(model=model)
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            audit_record(action="model_activate", target=model, after={"active": model.version}, request=request)
            self.message_user(
                request,
                gettext("v%(version)d is now active; every worker switches on its next message.")
                % {"version": model.version},
                messages.SUCCESS,
            )

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("train/", view(require_POST(self.train_view)), name="knowledge_intentmodel_train"),
            path("rollback/", view(require_POST(self.rollback_view)), name="knowledge_intentmodel_rollback"),
            path("<int:pk>/activate/", view(require_POST(self.activate_view)), name="knowledge_intentmodel_activate"),
            *super().get_urls(),
        ]

    def train_view(self, request):
        if not request.user.has_perm("knowledge.add_intentmodel"):
            raise PermissionDenied
        _train(request)
        return HttpResponseRedirect(reverse("admin:knowledge_intentmodel_changelist"))

    def rollback_view(self, request):
        if not self.has_change_permission(request):
            raise PermissionDenied
        try:
            model = services.intent_model_rollback()
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            audit_record(action="model_rollback", target=model, after={"active": model.version}, request=request)
            self.message_user(
                request, gettext("Rolled back: v%(version)d is active.") % {"version": model.version}, messages.SUCCESS
            )
        return HttpResponseRedirect(reverse("admin:knowledge_intentmodel_changelist"))

    def activate_view(self, request, pk: int):
        if not self.has_change_permission(request):
            raise PermissionDenied
        self._activate(request, get_object_or_404(IntentModel, pk=pk))
        return HttpResponseRedirect(reverse("admin:knowledge_intentmodel_change", args=[pk]))

    def changelist_view(self, request, extra_context=None):
        extra = {"training": IntentModel.objects.filter(status__in=["queued", "training"]).exists()}
        return super().changelist_view(request, {**extra, **(extra_context or {})})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        model = IntentModel.objects.defer("blob").filter(pk=object_id).first()
        extra = {}
        if model is not None:
            extra = selectors.intent_model_report(model)
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})


# -- knowledge mining: association rules, related FAQs, unanswered question groups ---------------------------


class MiningRunForm(forms.ModelForm):
    class Meta:
        model = MiningRun
        fields = ["kind", "days", "min_support", "min_confidence", "max_length", "max_questions"]


def _stats_text(run: MiningRun) -> str:
    stats = run.stats or {}
    if run.kind == MiningRun.Kind.RULES:
        keys = [("conversations", _("conversations")), ("itemsets", _("itemsets")), ("rules", _("rules"))]
    else:
        keys = [("questions", _("questions")), ("groups", _("groups"))]
    parts = [f"{label} {stats[key]}" for key, label in keys if key in stats]
    if "seconds" in stats:
        parts.append(gettext("%(s)s s") % {"s": stats["seconds"]})
    return "，".join(str(p) for p in parts) or "—"


@admin.register(MiningRun)
class MiningRunAdmin(AuditedModelAdmin):
    """Start a run with its thresholds (the add form), watch its progress, open its results."""

    form = MiningRunForm
    list_display = ["__str__", "status", "progress_bar", "thresholds", "results", "created_by", "created_at"]
    list_filter = ["kind", "status"]
    change_list_template = "admin/knowledge/miningrun/change_list.html"
    change_form_template = "admin/knowledge/miningrun/change_form.html"
    audit_exclude = ("progress", "progress_note", "updated_at")

    def get_fields(self, request, obj=None):
        if obj is None:
            return MiningRunForm.Meta.fields
        return [
            "kind",
            "status",
            "progress_bar",
            "progress_note",
            "days",
            "min_support",
            "min_confidence",
            "max_length",
            "max_questions",
            "results",
            "error",
            "started_at",
            "finished_at",
            "created_by",
        ]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    def has_change_permission(self, request, obj=None):
        return False if obj is not None and request.method == "POST" else super().has_change_permission(request, obj)

    @admin.display(description=_("progress"))
    def progress_bar(self, obj: MiningRun) -> str:
        return format_html(
            '<progress value="{}" max="100" title="{}"></progress> {}%', obj.progress, obj.progress_note, obj.progress
        )

    @admin.display(description=_("thresholds"))
    def thresholds(self, obj: MiningRun) -> str:
        if obj.kind == MiningRun.Kind.CLUSTERS:
            return gettext("last %(days)d days, at most %(n)d questions") % {"days": obj.days, "n": obj.max_questions}
        return gettext("last %(days)d days, support ≥ %(s)s, confidence ≥ %(c)s") % {
            "days": obj.days,
            "s": f"{obj.min_support:g}",
            "c": f"{obj.min_confidence:g}",
        }

    @admin.display(description=_("results"))
    def results(self, obj: MiningRun) -> str:
        text = _stats_text(obj)
        if obj.status != MiningRun.Status.DONE:
            return text
        if obj.kind == MiningRun.Kind.RULES:
            url = reverse("admin:knowledge_associationrule_changelist") + f"?run__id__exact={obj.pk}"
        else:
            url = reverse("admin:knowledge_unansweredcluster_changelist") + f"?run__id__exact={obj.pk}"
        return format_html('{} · <a href="{}">{}</a>', text, url, gettext("view"))

    def save_model(self, request, obj, form, change):
        try:
            mining.mining_run_start(run=obj, user=request.user)
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)

    def get_urls(self):
        return [
            path(
                "now/<str:kind>/",
                self.admin_site.admin_view(require_POST(self.now_view)),
                name="knowledge_miningrun_now",
            ),
            *super().get_urls(),
        ]

    def now_view(self, request, kind: str):
        """ "Run now" with the kind's last settings."""
        if not self.has_add_permission(request) or kind not in MiningRun.Kind.values:
            raise PermissionDenied
        run = mining.mining_run_schedule(kind=kind)
        if run is None:
            self.message_user(request, gettext("A run of this kind is already queued or running."), messages.WARNING)
        else:
            audit_record(action="mining:run", target=run, after={"kind": kind}, request=request)
            self.message_user(request, gettext("Run #%(id)d is queued.") % {"id": run.pk}, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:knowledge_miningrun_changelist"))

    def changelist_view(self, request, extra_context=None):
        extra = {
            "running": MiningRun.objects.filter(
                status__in=[MiningRun.Status.QUEUED, MiningRun.Status.RUNNING]
            ).exists(),
            "kinds": MiningRun.Kind.choices,
        }
        return super().changelist_view(request, {**extra, **(extra_context or {})})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = MiningRun.objects.filter(pk=object_id).first()
        extra: dict = dict(READ_ONLY_FORM)
        if run is not None:
            extra["running"] = run.status in (MiningRun.Status.QUEUED, MiningRun.Status.RUNNING)
            if run.kind == MiningRun.Kind.RULES:
                extra["top_rules"] = [
                    mining.rule_describe(r) for r in AssociationRule.objects.filter(run=run).order_by("-lift")[:10]
                ]
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})


READ_ONLY_FORM = {"show_save": False, "show_save_and_continue": False, "show_save_and_add_another": False}


def _row_button(url: str, label: str) -> str:
    # inside the changelist's form (which carries the CSRF token): the button posts that form to its own URL
    return format_html('<button type="submit" class="button" formaction="{}" formmethod="post">{}</button>', url, label)


@admin.register(AssociationRule)
class AssociationRuleAdmin(AuditedModelAdmin):
    """The mining results: "问发票的客户也常问税率（置信度 0.72，提升度 3.1）", to accept (link the FAQs) or dismiss."""

    list_display = ["sentence", "support_pct", "confidence_fmt", "lift_fmt", "count", "status", "buttons"]
    list_filter = ["status", "run"]
    search_fields = ["lhs_label", "rhs_label", "lhs_key", "rhs_key"]
    actions = ["accept_selected", "dismiss_selected"]
    list_per_page = 50

    def has_add_permission(self, request):
        return False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in AssociationRule._meta.fields if f.name != "id"]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return super().change_view(request, object_id, form_url, {**READ_ONLY_FORM, **(extra_context or {})})

    @admin.display(description=_("rule"), ordering="lhs_label")
    def sentence(self, obj: AssociationRule) -> str:
        return mining.rule_describe(obj)

    @admin.display(description=_("rule support"), ordering="support")
    def support_pct(self, obj: AssociationRule) -> str:
        return f"{obj.support:.2%}"

    @admin.display(description=_("confidence"), ordering="confidence")
    def confidence_fmt(self, obj: AssociationRule) -> str:
        return f"{obj.confidence:.2f}"

    @admin.display(description=_("lift"), ordering="lift")
    def lift_fmt(self, obj: AssociationRule) -> str:
        return f"{obj.lift:.1f}"

    @admin.display(description=_("actions"))
    def buttons(self, obj: AssociationRule) -> str:
        parts = []
        if obj.status != AssociationRule.Status.ACCEPTED and obj.faq_pair is not None:
            url = reverse("admin:knowledge_associationrule_decide", args=[obj.pk, "accept"])
            parts.append(_row_button(url, gettext("Link the FAQs")))
        if obj.status != AssociationRule.Status.DISMISSED:
            url = reverse("admin:knowledge_associationrule_decide", args=[obj.pk, "dismiss"])
            parts.append(_row_button(url, gettext("Dismiss")))
        return format_html_join(" ", "{}", ((p,) for p in parts)) if parts else "—"

    def _decide(self, request, rule: AssociationRule, decision: str) -> bool:
        try:
            if decision == "accept":
                relation = mining.association_rule_accept(rule=rule, user=request.user)
                audit_record(
                    action="mining:accept",
                    target=rule,
                    after={"faq": relation.faq_id, "related": relation.related_id},
                    request=request,
                )
            else:
                mining.association_rule_dismiss(rule=rule, user=request.user)
                audit_record(action="mining:dismiss", target=rule, request=request)
        except ApplicationError as exc:
            self.message_user(request, f"{mining.rule_describe(rule)}: {exc.message}", messages.WARNING)
            return False
        return True

    @audited_action(description=_("Accept: link the two FAQ entries as related"), permissions=["change"])
    def accept_selected(self, request, queryset):
        done = sum(self._decide(request, rule, "accept") for rule in queryset)
        if done:
            self.message_user(
                request,
                gettext("%(n)d rules accepted: the bot now offers the related question after the answer.")
                % {"n": done},
                messages.SUCCESS,
            )

    @audited_action(description=_("Dismiss the selected rules"), permissions=["change"])
    def dismiss_selected(self, request, queryset):
        done = sum(self._decide(request, rule, "dismiss") for rule in queryset)
        self.message_user(request, gettext("%(n)d rules dismissed.") % {"n": done}, messages.SUCCESS)

    def get_urls(self):
        return [
            path(
                "<int:pk>/<str:decision>/",
                self.admin_site.admin_view(require_POST(self.decide_view)),
                name="knowledge_associationrule_decide",
            ),
            *super().get_urls(),
        ]

    def decide_view(self, request, pk: int, decision: str):
        if decision not in ("accept", "dismiss") or not self.has_change_permission(request):
            raise PermissionDenied
        rule = get_object_or_404(AssociationRule, pk=pk)
        if self._decide(request, rule, decision):
            text = gettext("Linked: %(rule)s") if decision == "accept" else gettext("Dismissed: %(rule)s")
            self.message_user(request, text % {"rule": mining.rule_describe(rule)}, messages.SUCCESS)
        return HttpResponseRedirect(
            request.META.get("HTTP_REFERER") or reverse("admin:knowledge_associationrule_changelist")
        )


@admin.register(UnansweredCluster)
class UnansweredClusterAdmin(AuditedModelAdmin):
    """Groups of questions the bot could not answer; "Create a draft FAQ" makes a disabled FAQ entry from one."""

    list_display = ["label", "size", "examples_text", "keywords_text", "status", "draft_link", "buttons"]
    list_filter = ["status", "run"]
    actions = ["draft_selected", "dismiss_selected"]
    fields = ["label", "size", "examples_text", "keywords_text", "status", "draft_link", "run", "created_at"]
    readonly_fields = fields
    list_per_page = 50

    def has_add_permission(self, request):
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return super().change_view(request, object_id, form_url, {**READ_ONLY_FORM, **(extra_context or {})})

    @admin.display(description=_("examples"))
    def examples_text(self, obj: UnansweredCluster) -> str:
        return format_html_join("", "<div>{}</div>", ((e,) for e in (obj.examples or [])[:5]))

    @admin.display(description=_("keywords"))
    def keywords_text(self, obj: UnansweredCluster) -> str:
        return "、".join(obj.keywords or []) or "—"

    @admin.display(description=_("draft FAQ"))
    def draft_link(self, obj: UnansweredCluster) -> str:
        if obj.draft_faq_id is None:
            return "—"
        url = reverse("admin:knowledge_faq_change", args=[obj.draft_faq_id])
        return format_html('<a href="{}">{}</a>', url, gettext("FAQ #%(id)d") % {"id": obj.draft_faq_id})

    @admin.display(description=_("actions"))
    def buttons(self, obj: UnansweredCluster) -> str:
        if obj.draft_faq_id is not None:
            return "—"
        url = reverse("admin:knowledge_unansweredcluster_draft", args=[obj.pk])
        return _row_button(url, gettext("Create a draft FAQ"))

    def _draft(self, request, cluster: UnansweredCluster) -> Faq:
        faq = mining.unanswered_cluster_draft(cluster=cluster)
        audit_record(action="mining:draft_faq", target=faq, after={"cluster": cluster.pk}, request=request)
        return faq

    @audited_action(description=_("Create draft FAQs from the selected groups"), permissions=["change"])
    def draft_selected(self, request, queryset):
        if not request.user.has_perm("knowledge.add_faq"):
            raise PermissionDenied
        faqs = [self._draft(request, cluster) for cluster in queryset]
        self.message_user(
            request,
            gettext("%(n)d draft FAQs created (disabled): write their answers, then enable them.") % {"n": len(faqs)},
            messages.SUCCESS,
        )

    @audited_action(description=_("Dismiss the selected groups"), permissions=["change"])
    def dismiss_selected(self, request, queryset):
        for cluster in queryset:
            mining.unanswered_cluster_dismiss(cluster=cluster)

    def get_urls(self):
        return [
            path(
                "<int:pk>/draft/",
                self.admin_site.admin_view(require_POST(self.draft_view)),
                name="knowledge_unansweredcluster_draft",
            ),
            *super().get_urls(),
        ]

    def draft_view(self, request, pk: int):
        """One click: the draft FAQ is created and opened, ready for its answer."""
        if not (self.has_change_permission(request) and request.user.has_perm("knowledge.add_faq")):
            raise PermissionDenied
        faq = self._draft(request, get_object_or_404(UnansweredCluster, pk=pk))
        self.message_user(
            request,
            gettext("Draft FAQ created (disabled): write the answer, check the similar questions, then enable it."),
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:knowledge_faq_change", args=[faq.pk]))


@admin.register(FaqRelation)
class FaqRelationAdmin(AuditedModelAdmin):
    """Questions the bot offers after an FAQ answer ("您可能还想了解"): from accepted association rules, or added
    here by hand. Every change reloads the workers' FAQ data."""

    list_display = ["faq", "related", "score", "rule", "created_at"]
    search_fields = ["faq__question", "related__question"]
    autocomplete_fields = ["faq", "related"]
    readonly_fields = ["rule"]
    fields = ["faq", "related", "score", "rule"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        services.faqs_changed()

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        services.faqs_changed()

    def delete_queryset(self, request, queryset):
        super().delete_queryset(request, queryset)
        services.faqs_changed()
