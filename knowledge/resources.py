"""Import/export (django-import-export) of keyword rules, FAQs and products, as CSV or XLSX.

Imports validate every row with the model's ``clean`` (a bad regex is a row error, not a saved rule) and,
once the import commits, move the version key so every worker reloads.
"""

from __future__ import annotations

import re

from import_export import fields, resources, widgets

from knowledge import rules, versions
from knowledge.models import Faq, FaqCategory, FaqQuestion, KeywordRule, Product


def _after_commit(kwargs: dict, bump) -> None:
    from django.db import transaction

    if not kwargs.get("dry_run"):
        transaction.on_commit(bump)


class KeywordRuleResource(resources.ModelResource):
    class Meta:
        model = KeywordRule
        fields = (
            "id",
            "name",
            "keyword",
            "match_type",
            "reply",
            "priority",
            "enabled",
            "channels",
            "active_from",
            "active_until",
            "daily_start",
            "daily_end",
        )
        clean_model_instances = True
        use_transactions = True  # a file with one bad row imports nothing
        skip_unchanged = True
        report_skipped = False

    def after_import(self, dataset, result, **kwargs):
        _after_commit(kwargs, rules.bump_version)


class CategoryWidget(widgets.ForeignKeyWidget):
    """A category by name, created when missing (an empty cell means no category)."""

    def __init__(self) -> None:
        super().__init__(FaqCategory, field="name")

    def clean(self, value, row=None, **kwargs):
        name = (value or "").strip()
        if not name:
            return None
        category, _ = FaqCategory.objects.get_or_create(name=name[:100])
        return category


class FaqResource(resources.ModelResource):
    category = fields.Field(attribute="category", column_name="category", widget=CategoryWidget())
    similar_questions = fields.Field(column_name="similar_questions")

    class Meta:
        model = Faq
        fields = (
            "id",
            "category",
            "question",
            "similar_questions",
            "answer",
            "link_url",
            "image_url",
            "valid_from",
            "valid_until",
            "enabled",
        )
        clean_model_instances = True
        use_transactions = True  # a file with one bad row imports nothing

    def dehydrate_similar_questions(self, faq: Faq) -> str:
        return "\n".join(q.text for q in faq.similar_questions.all())

    def after_save_instance(self, instance, row, **kwargs):
        if kwargs.get("dry_run") and not self._is_using_transactions(kwargs):
            return
        cell = row.get("similar_questions")
        if cell is None:
            return
        wanted = list(dict.fromkeys(s.strip()[:300] for s in re.split(r"[\n|]+", str(cell)) if s.strip()))
        FaqQuestion.objects.filter(faq=instance).exclude(text__in=wanted).delete()
        have = set(FaqQuestion.objects.filter(faq=instance).values_list("text", flat=True))
        FaqQuestion.objects.bulk_create([FaqQuestion(faq=instance, text=t) for t in wanted if t not in have])

    def after_import(self, dataset, result, **kwargs):
        _after_commit(kwargs, lambda: versions.bump("faq"))


class ProductResource(resources.ModelResource):
    class Meta:
        model = Product
        fields = ("id", "sku", "name", "category", "aliases", "price", "colors", "attributes", "stock", "enabled")
        import_id_fields = ("sku",)
        clean_model_instances = True
        use_transactions = True  # a file with one bad row imports nothing

    def after_import(self, dataset, result, **kwargs):
        _after_commit(kwargs, lambda: versions.bump("catalog"))
