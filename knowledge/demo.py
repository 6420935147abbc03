"""Demo knowledge for an electronics shop (优选数码): idempotent, a few seconds.

``seed_knowledge`` loads products, demo orders, synonyms, FAQs, intents with examples and keyword rules,
each only when missing (rows are looked up by a natural key and never updated), trains the first intent
model synchronously when no version is active, and fits the FAQ index so the first customer message is
fast. A second run changes nothing.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from knowledge import demo_data, rules, versions
from knowledge.models import (
    DemoOrder,
    Faq,
    FaqCategory,
    FaqQuestion,
    Intent,
    IntentExample,
    IntentModel,
    KeywordRule,
    Product,
    Synonym,
)


def seed_rules() -> int:
    created = 0
    for name, keyword, match_type, priority, reply, extra in demo_data.KEYWORD_RULES:
        _, was_created = KeywordRule.objects.get_or_create(
            name=name,
            defaults={"keyword": keyword, "match_type": match_type, "priority": priority, "reply": reply, **extra},
        )
        created += was_created
    if created:
        transaction.on_commit(rules.bump_version)
    return created


def seed_catalog() -> int:
    created = 0
    for name, sku, category, aliases, price, colors, attributes, stock in demo_data.PRODUCTS:
        _, was_created = Product.objects.get_or_create(
            sku=sku,
            defaults={
                "name": name,
                "category": category,
                "aliases": aliases,
                "price": Decimal(price),
                "colors": colors,
                "attributes": attributes,
                "stock": stock,
            },
        )
        created += was_created
    for word, synonyms in demo_data.SYNONYMS:
        _, was_created = Synonym.objects.get_or_create(word=word, defaults={"synonyms": synonyms})
        created += was_created
    for order_no, phone, status, items, carrier, tracking, event in demo_data.ORDERS:
        _, was_created = DemoOrder.objects.get_or_create(
            order_no=order_no,
            defaults={
                "phone": phone,
                "status": status,
                "items": items,
                "carrier": carrier,
                "tracking_no": tracking,
                "last_event": event,
            },
        )
        created += was_created
    if created:
        transaction.on_commit(lambda: versions.bump("catalog"))
    return created


def seed_faqs() -> int:
    created = 0
    categories: dict[str, FaqCategory] = {}
    for order, name in enumerate(dict.fromkeys(row[0] for row in demo_data.FAQS)):
        categories[name], _ = FaqCategory.objects.get_or_create(name=name, defaults={"order": order})
    for category, question, answer, similar in demo_data.FAQS:
        if Faq.objects.filter(question=question).exists():
            continue
        faq = Faq.objects.create(category=categories[category], question=question, answer=answer)
        FaqQuestion.objects.bulk_create([FaqQuestion(faq=faq, text=text) for text in similar])
        created += 1
    if created:
        transaction.on_commit(lambda: versions.bump("faq"))
    return created


def seed_intents() -> int:
    created = 0
    for name, description, answer, form, handoff, examples in demo_data.INTENTS:
        intent, was_created = Intent.objects.get_or_create(
            name=name, defaults={"description": description, "answer": answer, "form": form, "handoff": handoff}
        )
        if was_created:
            IntentExample.objects.bulk_create([IntentExample(intent=intent, text=t) for t in dict.fromkeys(examples)])
            created += 1
    if created:
        transaction.on_commit(lambda: versions.bump("intents"))
    return created


def seed_intent_model() -> IntentModel | None:
    """Train and activate the first model, synchronously (a few seconds), when none is active."""
    from knowledge.services import intents as intent_service

    if IntentModel.objects.filter(active=True).exists():
        return None
    model = intent_service.intent_model_train_start(queue=False)
    return intent_service.intent_model_train_run(model_id=model.id)


def warm_faq_index() -> None:
    """Fit the FAQ index now and share it through Redis, so no customer waits for it."""
    from knowledge.services import faq as faq_service

    versions.reset_all()
    faq_service.index_cache.get(versions.STALE_OK)
    versions.reset_all()  # this process' copies were built inside the seed transaction


def seed_knowledge() -> dict[str, int]:
    """Everything above; returns what it created (all zeros on a second run)."""
    counts = {
        "keyword_rules": seed_rules(),
        "catalog_rows": seed_catalog(),
        "faqs": seed_faqs(),
        "intents": seed_intents(),
    }
    model = seed_intent_model()
    counts["intent_models"] = int(model is not None)
    if counts["faqs"] or counts["catalog_rows"]:
        warm_faq_index()
    return counts
