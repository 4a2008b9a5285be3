"""Benchmark: fuzzy match suggestions (Splink) on labelled synthetic duplicates.

Prints one JSON document. For each size and seed, ``labelled_duplicates`` makes customers with
known duplicates (typos, nicknames, swapped names, another email provider, a new phone; never an
exact shared email or phone, so the deterministic graph keeps them apart), ``suggest_matches``
scores them and ``evaluate`` compares with the truth.

Targets: precision at least 0.98 at the auto-apply threshold (AUTO_APPLY_PROBABILITY), recall at
least 0.90 among the suggestions (probability SUGGEST_MIN_PROBABILITY and up).

    python bench/identity_fuzzy.py [--people 3000,20000] [--seeds 1,2,3] [--share 0.1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from orchestration.identity.fuzzy import (
    AUTO_APPLY_PROBABILITY,
    SUGGEST_MIN_PROBABILITY,
    evaluate,
    labelled_duplicates,
    suggest_matches,
)

TARGET_PRECISION = 0.98
TARGET_RECALL = 0.90


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", default="3000,20000")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--share", type=float, default=0.1)
    args = parser.parse_args()
    runs = []
    for people in (int(n) for n in args.people.split(",")):
        for seed in (int(s) for s in args.seeds.split(",")):
            records, truth = labelled_duplicates(people, args.share, seed)
            started = time.perf_counter()
            suggestions = suggest_matches(records)
            seconds = time.perf_counter() - started
            scores = evaluate(suggestions, truth, AUTO_APPLY_PROBABILITY)
            runs.append(
                {
                    "people": people,
                    "records": records.num_rows,
                    "seed": seed,
                    "true_pairs": len(truth),
                    "seconds": round(seconds, 2),
                    **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in scores.items()},
                }
            )
    print(
        json.dumps(
            {
                "benchmark": "identity_fuzzy",
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                },
                "auto_apply_probability": AUTO_APPLY_PROBABILITY,
                "suggest_min_probability": SUGGEST_MIN_PROBABILITY,
                "targets": {
                    "precision_at_auto_apply": TARGET_PRECISION,
                    "recall_among_suggestions": TARGET_RECALL,
                },
                "runs": runs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
