"""Intents: training data imports, model training (a Celery task on the ``ml`` queue), activation and
roll-back, and the per-worker runtime of the active model."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import re
import time
from collections import Counter
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from core.errors import ApplicationError
from knowledge import context as ctx
from knowledge import versions
from knowledge.ml.normalize import normalize
from knowledge.models import Intent, IntentExample, IntentModel, Synonym

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.55
DEFAULT_MARGIN = 0.2
MIN_COVERAGE = 0.34  # share of a message's words the model has seen in training, else it is out of scope
HOLDOUT_SHARE = 0.2
PRODUCT_VARIABLES = ("{product}", "{price}", "{colors}", "{stock}")


# -- training data --------------------------------------------------------------------------------------


def training_data() -> tuple[list[str], list[str]]:
    """(texts, labels) of every example of every enabled intent."""
    rows = IntentExample.objects.filter(intent__enabled=True).values_list("text", "intent__name").order_by("id")
    texts = [t for t, _ in rows]
    labels = [label for _, label in rows]
    return texts, labels


def training_data_problem() -> str | None:
    """Why a model cannot be trained now (a message for the operator), or None."""
    texts, labels = training_data()
    usable = Counter(label for text, label in zip(texts, labels, strict=True) if normalize(text))
    if not usable:
        return _("There are no training examples yet: add intents with examples (or import them) first.")
    if len(usable) < 2:
        return _("Training needs at least two intents with examples; only %(name)s has any. Add a second intent.") % {
            "name": next(iter(usable))
        }
    return None


# -- imports ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ImportReport:
    intents_created: int = 0
    examples_created: int = 0
    examples_skipped: int = 0
    synonyms: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


_ENTITY_ANNOTATION = re.compile(r"\[([^\]]+)\](?:\([^)]*\)|\{[^}]*\})")


def _strip_annotations(text: str) -> str:
    """Rasa's ``[小米14](product)`` / ``[小米14]{"entity": "product"}`` -> ``小米14``."""
    return _ENTITY_ANNOTATION.sub(r"\1", text)


def parse_examples(content: bytes | str, *, filename: str = "", fmt: str | None = None) -> tuple[list, dict]:
    """Parse training data: JSONL ``{"text","label"}``, CSV ``text,label`` or Rasa ``nlu.yml``.

    Returns ``([(text, label)], {word: [synonyms]})``. Raises ApplicationError naming the line at fault.
    """
    if isinstance(content, bytes):
        try:
            content = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ApplicationError(_("The file is not UTF-8 text."), code="import_encoding") from None
    name = filename.lower()
    if fmt is None:
        if name.endswith((".yml", ".yaml")):
            fmt = "rasa"
        elif name.endswith(".csv"):
            fmt = "csv"
        elif name.endswith((".jsonl", ".json", ".ndjson")):
            fmt = "jsonl"
        else:
            stripped = content.lstrip()
            fmt = "jsonl" if stripped.startswith("{") else "rasa" if stripped.startswith(("nlu", "version")) else "csv"
    pairs: list[tuple[str, str]] = []
    synonyms: dict[str, list[str]] = {}
    if fmt == "jsonl":
        for lineno, line in enumerate(content.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ApplicationError(
                    _("Line %(line)d is not valid JSON (%(error)s).") % {"line": lineno, "error": exc.msg},
                    code="import_format",
                ) from None
            if (
                not isinstance(obj, dict)
                or not str(obj.get("text") or "").strip()
                or not str(obj.get("label") or "").strip()
            ):
                raise ApplicationError(
                    _('Line %(line)d needs a "text" and a "label".') % {"line": lineno}, code="import_format"
                )
            pairs.append((str(obj["text"]).strip(), str(obj["label"]).strip()))
    elif fmt == "csv":
        reader = csv.reader(io.StringIO(content))
        for lineno, row in enumerate(reader, 1):
            if not row or not any(cell.strip() for cell in row):
                continue
            if lineno == 1 and [c.strip().lower() for c in row[:2]] == ["text", "label"]:
                continue
            if len(row) < 2 or not row[0].strip() or not row[1].strip():
                raise ApplicationError(
                    _("Line %(line)d needs two columns: text,label.") % {"line": lineno}, code="import_format"
                )
            pairs.append((row[0].strip(), row[1].strip()))
    elif fmt == "rasa":
        import yaml

        try:
            data = yaml.safe_load(content)
        except yaml.YAMLError as exc:
            raise ApplicationError(
                _("The YAML file cannot be read: %(error)s") % {"error": str(exc)[:200]}, code="import_format"
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("nlu"), list):
            raise ApplicationError(_("A Rasa file needs a top-level nlu: list."), code="import_format")
        for item in data["nlu"]:
            if not isinstance(item, dict):
                continue
            examples = item.get("examples") or ""
            if isinstance(examples, str):
                lines = [ln.strip()[1:].strip() for ln in examples.splitlines() if ln.strip().startswith("-")]
            else:
                lines = [str(x) for x in examples]
            lines = [_strip_annotations(ln) for ln in lines if ln]
            if item.get("intent"):
                pairs.extend((ln, str(item["intent"]).strip()) for ln in lines if ln.strip())
            elif item.get("synonym"):
                synonyms.setdefault(str(item["synonym"]).strip(), []).extend(lines)
    else:
        raise ApplicationError(_("Unknown format %(fmt)s.") % {"fmt": fmt}, code="import_format")
    if not pairs and not synonyms:
        raise ApplicationError(_("The file contains no training examples."), code="import_empty")
    return pairs, synonyms


@transaction.atomic
def intent_examples_import(*, content: bytes | str, filename: str = "", fmt: str | None = None) -> ImportReport:
    """Add the examples of a file (creating missing intents); existing examples are skipped."""
    pairs, synonyms = parse_examples(content, filename=filename, fmt=fmt)
    report = ImportReport()
    intents = {i.name: i for i in Intent.objects.all()}
    existing = set(IntentExample.objects.values_list("intent__name", "text"))
    new_examples = []
    for text, label in pairs:
        text = text[:300]
        label = label[:60]
        if label not in intents:
            intents[label] = Intent.objects.create(name=label)
            report.intents_created += 1
        if (label, text) in existing:
            report.examples_skipped += 1
            continue
        existing.add((label, text))
        new_examples.append(IntentExample(intent=intents[label], text=text))
    IntentExample.objects.bulk_create(new_examples)
    report.examples_created = len(new_examples)
    for word, variants in synonyms.items():
        row, _created = Synonym.objects.get_or_create(word=word[:50], defaults={"synonyms": ""})
        merged = list(dict.fromkeys([*row.synonym_list, *variants]))
        row.synonyms = ", ".join(merged)[:500]
        row.save()
        report.synonyms += 1
    if report.synonyms:
        transaction.on_commit(lambda: versions.bump("catalog"))
    return report


# -- training ---------------------------------------------------------------------------------------------


@transaction.atomic
def intent_model_train_start(*, user: Any = None, queue: bool = True) -> IntentModel:
    """Create a queued model version and queue its training on the ``ml`` queue after commit.

    ``queue=False``: the caller runs ``intent_model_train_run`` itself (the demo seed does, synchronously).
    """
    problem = training_data_problem()
    if problem:
        raise ApplicationError(problem, code="no_training_data")
    for _attempt in range(3):
        version = (IntentModel.objects.aggregate(v=Max("version"))["v"] or 0) + 1
        try:
            with transaction.atomic():
                model = IntentModel.objects.create(
                    version=version,
                    status=IntentModel.Status.QUEUED,
                    progress_note=_("Waiting for a worker"),
                    created_by=user if getattr(user, "pk", None) else None,
                )
            break
        except IntegrityError:  # two operators pressed the button at once
            continue
    else:
        raise ApplicationError(_("Could not create a new version; try again."), code="version_conflict")

    def send() -> None:
        from knowledge.tasks import intent_model_train

        intent_model_train.delay(model.id)

    if queue:
        transaction.on_commit(send)
    return model


def _progress(model_id: int, progress: int, note: str, **fields: Any) -> None:
    IntentModel.objects.filter(pk=model_id).update(progress=progress, progress_note=note, **fields)


def _split(texts: list[str], labels: list[str], seed: int = 0) -> tuple[list[int], list[int]]:
    """Stratified hold-out: about 20% of each intent with at least 3 examples goes to the test side."""
    import random

    rng = random.Random(seed)
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    train, test = [], []
    for idx in by_label.values():
        idx = idx[:]
        rng.shuffle(idx)
        n_test = int(round(len(idx) * HOLDOUT_SHARE)) if len(idx) >= 3 else 0
        test.extend(idx[:n_test])
        train.extend(idx[n_test:])
    return sorted(train), sorted(test)


def intent_model_train_run(*, model_id: int, evaluate_holdout: bool = True) -> IntentModel:
    """Train one queued version: hold-out evaluation, then the final model on every example.

    ``evaluate_holdout=False`` skips the evaluation (the benchmark's throw-away models).

    Idempotent: a version already ready or failed is returned as is. Failures are stored on the version
    (status ``failed`` with the error) and never raised, so a broken data set cannot make the task retry
    forever.
    """
    from knowledge.ml.intents import IntentClassifier, TrainingDataError, evaluate
    from knowledge.ml.tokenize import Tokenizer

    model = IntentModel.objects.get(pk=model_id)
    if model.status in (IntentModel.Status.READY, IntentModel.Status.FAILED):
        return model
    started = time.perf_counter()
    _progress(
        model_id, 5, _("Loading training examples"), status=IntentModel.Status.TRAINING, started_at=timezone.now()
    )
    try:
        problem = training_data_problem()
        if problem:
            raise TrainingDataError(problem)
        catalog = ctx.catalog_cache.get()
        texts, labels = training_data()
        texts = [catalog.rewrite(normalize(t)) for t in texts]
        tokenizer = Tokenizer(catalog.dictionary_words())
        train_idx, test_idx = _split(texts, labels)
        metrics: dict[str, Any] = {}
        if evaluate_holdout and test_idx and len({labels[i] for i in train_idx}) >= 2:
            _progress(model_id, 15, _("Training on 80 percent of the examples to measure accuracy"))
            probe = IntentClassifier.train(
                [texts[i] for i in train_idx], [labels[i] for i in train_idx], tokenizer=tokenizer
            )
            _progress(model_id, 50, _("Evaluating on the held-out examples"))
            metrics = evaluate(probe, [texts[i] for i in test_idx], [labels[i] for i in test_idx])
            metrics["evaluation"] = "holdout-20%"
            metrics["misclassified"] = metrics.get("misclassified", [])[:200]
        else:
            metrics["evaluation"] = "none (too few examples for a held-out split)"
        metrics["n_train"] = len(train_idx)
        _progress(model_id, 65, _("Training the final model on all examples"))
        final = IntentClassifier.train(texts, labels, tokenizer=tokenizer)
        vocabulary = sorted({tok for text in texts for tok in final.tokenizer.cut(text)})
        metrics["train_seconds"] = round(time.perf_counter() - started, 2)
        metrics["calibrated"] = bool(final.info and final.info.calibrated)
        metrics["embedding"] = (final.info.extra.get("embedding") if final.info else None) or "none"
        blob = final.dumps()
    except TrainingDataError as exc:
        _progress(
            model_id, 100, _("Failed"), status=IntentModel.Status.FAILED, error=str(exc), finished_at=timezone.now()
        )
        return IntentModel.objects.get(pk=model_id)
    except Exception as exc:  # noqa: BLE001 - stored on the version for the operator
        logger.exception("intent model training failed", extra={"model_id": model_id})
        _progress(
            model_id,
            100,
            _("Failed"),
            status=IntentModel.Status.FAILED,
            error=f"{type(exc).__name__}: {exc}"[:2000],
            finished_at=timezone.now(),
        )
        return IntentModel.objects.get(pk=model_id)
    with transaction.atomic():
        model = IntentModel.objects.select_for_update().get(pk=model_id)
        model.blob = blob
        model.metrics = metrics
        model.labels = sorted(set(labels))
        model.vocabulary = vocabulary
        model.n_examples = len(texts)
        model.status = IntentModel.Status.READY
        model.progress = 100
        model.progress_note = _("Ready")
        model.error = ""
        model.finished_at = timezone.now()
        model.save()
        if not IntentModel.objects.filter(active=True).exists():  # the first model goes live by itself
            _activate(model)
    return model


# -- activation -------------------------------------------------------------------------------------------


def _activate(model: IntentModel) -> None:
    IntentModel.objects.filter(active=True).exclude(pk=model.pk).update(active=False)
    model.active = True
    model.save(update_fields=["active", "updated_at"])
    transaction.on_commit(lambda: versions.bump("intents"))


@transaction.atomic
def intent_model_activate(*, model: IntentModel) -> IntentModel:
    """Make ``model`` the version every worker uses (they switch on their next message)."""
    model = IntentModel.objects.select_for_update().get(pk=model.pk)
    if model.status != IntentModel.Status.READY:
        raise ApplicationError(_("Only a ready version can be activated."), code="model_not_ready")
    _activate(model)
    return model


@transaction.atomic
def intent_model_rollback() -> IntentModel:
    """Activate the newest ready version older than the active one."""
    current = IntentModel.objects.select_for_update().filter(active=True).first()
    older = IntentModel.objects.filter(status=IntentModel.Status.READY)
    if current is not None:
        older = older.filter(version__lt=current.version)
    previous = older.order_by("-version").first()
    if previous is None:
        raise ApplicationError(_("There is no earlier ready version to roll back to."), code="no_previous_model")
    _activate(previous)
    return previous


@transaction.atomic
def intent_model_settings_save(*, model: IntentModel) -> IntentModel:
    """Save a version's own threshold and margin (the active one applies them on the next message)."""
    model.full_clean(exclude=["blob"])
    model.save(update_fields=["threshold", "margin", "updated_at"])
    transaction.on_commit(lambda: versions.bump("intents"))
    return model


@transaction.atomic
def intent_save(*, intent: Intent) -> Intent:
    intent.full_clean()
    intent.save()
    transaction.on_commit(lambda: versions.bump("intents"))  # answers, forms and hand-off flags are live
    return intent


@transaction.atomic
def intent_delete(*, intent: Intent) -> None:
    intent.delete()
    transaction.on_commit(lambda: versions.bump("intents"))


# -- runtime ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class IntentInfo:
    id: int
    name: str
    answer: str
    form: str
    handoff: bool
    description: str = ""

    @property
    def needs_product(self) -> bool:
        return any(v in self.answer for v in PRODUCT_VARIABLES)


@dataclasses.dataclass
class IntentRuntime:
    """The active model of this worker with the intents it may answer."""

    version: int | None
    model: Any
    intents: dict[str, IntentInfo]
    vocabulary: frozenset[str]
    threshold: float
    margin: float
    error: str = ""

    def coverage(self, text: str) -> float:
        if self.model is None:
            return 0.0
        tokens = self.model.tokenizer.cut(text)
        if not tokens:
            return 0.0
        return sum(tok in self.vocabulary for tok in tokens) / len(tokens)

    def predict(self, text: str, k: int = 3) -> list[tuple[str, float]]:
        if self.model is None or not text:
            return []
        return self.model.predict(text, k=k)


def _threshold(model: IntentModel | None) -> tuple[float, float]:
    threshold = getattr(settings, "KEFU_INTENT_THRESHOLD", DEFAULT_THRESHOLD)
    margin = getattr(settings, "KEFU_INTENT_MARGIN", DEFAULT_MARGIN)
    if model is not None and model.threshold is not None:
        threshold = model.threshold
    if model is not None and model.margin is not None:
        margin = model.margin
    return float(threshold), float(margin)


def _load_runtime() -> IntentRuntime:
    from knowledge.ml.intents import IntentClassifier, ModelFormatError

    intents = {
        i.name: IntentInfo(
            id=i.id, name=i.name, answer=i.answer, form=i.form, handoff=i.handoff, description=i.description
        )
        for i in Intent.objects.filter(enabled=True)
    }
    row = IntentModel.objects.filter(active=True, status=IntentModel.Status.READY).first()
    threshold, margin = _threshold(row)
    if row is None or not row.blob:
        return IntentRuntime(None, None, intents, frozenset(), threshold, margin)
    try:
        model = IntentClassifier.loads(bytes(row.blob))
        model.predict("你好")  # load the tokenizer dictionary and embedding backend now, not on a customer
    except (ModelFormatError, RuntimeError) as exc:
        logger.error("active intent model cannot load", extra={"version": row.version, "error": str(exc)})
        return IntentRuntime(row.version, None, intents, frozenset(), threshold, margin, error=str(exc))
    return IntentRuntime(row.version, model, intents, frozenset(row.vocabulary or []), threshold, margin)


runtime_cache = versions.cached("intents", _load_runtime)
