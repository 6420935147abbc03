"""Reads: what this worker holds in memory, health, and data for admin pages."""

from __future__ import annotations

from typing import Any

from knowledge import context as ctx
from knowledge import rules
from knowledge.models import IntentModel
from knowledge.services import faq as faq_service
from knowledge.services import intents as intent_service


def matcher_status() -> dict[str, Any]:
    """What this process holds now (nothing is built by asking)."""
    index = faq_service.index_cache.peek()
    runtime = intent_service.runtime_cache.peek()
    catalog = ctx.catalog_cache.peek()
    rule_index = rules.cache.peek()
    return {
        "faq": None
        if index is None
        else {
            "entries": len(index.answers),
            "embedding_backend": index.backend,
            "requested": index.requested,
            "lexical_only": index.lexical_only,
            "source": index.source,
            "build_ms": index.build_ms,
            "error": index.error,
        },
        "intents": None
        if runtime is None
        else {"model_version": runtime.version, "intents": len(runtime.intents), "error": runtime.error},
        "keyword_rules": None if rule_index is None else len(rule_index),
        "products": None if catalog is None else len(catalog.products),
    }


def embedding_status() -> dict[str, Any]:
    """Whether the configured FAQ embedding backend loads in this process (it is loaded if needed)."""
    from knowledge.ml import embeddings

    requested = faq_service.embedding_setting()
    if requested == "none":
        return {"requested": "none", "available": [], "lexical_only": True, "backends": embeddings.status()}
    names = embeddings.BACKENDS if requested == "auto" else (requested,)
    available = [name for name in names if embeddings.get_embedder(name) is not None]
    return {
        "requested": requested,
        "available": available,
        "lexical_only": not available,
        "backends": embeddings.status(),
    }


def embedding_health_check() -> str:
    """For /healthz (registered by knowledge.apps): never fails the page, says when matching is lexical only."""
    status = embedding_status()
    if status["requested"] == "none":
        return "disabled (KEFU_FAQ_EMBEDDINGS=none): FAQ matching uses lexical features only"
    if status["lexical_only"]:
        errors = "; ".join(f"{k}: {v}" for k, v in status["backends"].items() if v.startswith("unavailable"))
        return (
            f"degraded: embedding backend unavailable ({errors or status['requested']}); FAQ matching is lexical only"
        )
    return "FAQ embeddings: " + "+".join(status["available"])


def intent_model_report(model: IntentModel) -> dict[str, Any]:
    """Template data for a model version's page: metrics, per-intent rows, confusion matrix, errors."""
    metrics = model.metrics or {}
    per_label = metrics.get("per_label") or {}
    rows = [
        {"intent": label, **values}
        for label, values in sorted(per_label.items(), key=lambda kv: (kv[1].get("f1", 0), kv[0]))
    ]
    confusion = metrics.get("confusion") or {}
    labels = list(confusion.get("labels") or [])
    matrix = [list(r) for r in confusion.get("matrix") or []]
    peak = max((v for r in matrix for v in r), default=0) or 1
    table = []
    for i, (label, row) in enumerate(zip(labels, matrix, strict=False)):
        cells = []
        for j, value in enumerate(row):
            strength = value / peak
            if i == j:
                color = f"rgba(46, 125, 50, {0.15 + 0.85 * strength:.2f})" if value else "transparent"
            else:
                color = f"rgba(198, 40, 40, {0.2 + 0.8 * strength:.2f})" if value else "transparent"
            cells.append({"value": value, "color": color})
        table.append({"label": label, "cells": cells})
    heat = [[j, i, value] for i, row in enumerate(matrix) for j, value in enumerate(row)]
    return {
        "metrics": metrics,
        "per_label_rows": rows,
        "confusion_labels": labels,
        "confusion_table": table,
        "confusion_chart": {"labels": labels, "data": heat, "max": peak},
        "misclassified": (metrics.get("misclassified") or [])[:100],
        "in_progress": model.status in (IntentModel.Status.QUEUED, IntentModel.Status.TRAINING),
    }
