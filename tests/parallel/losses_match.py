#!/usr/bin/env python3
"""Whether a resumed run's losses equal an uninterrupted reference run's (the restart tests).

usage: losses_match.py REF_RUN RUN STEPS LABEL
RUN/metrics.jsonl must hold steps 1..STEPS, each loss within 1e-5 relative of REF_RUN's (FP32 layouts sum
in another order: training_equivalence_test.cpp); exits 1 otherwise."""
import json
import sys


def losses(run):
    return {r["step"]: r["loss"] for r in map(json.loads, open(f"{run}/metrics.jsonl"))}


ref_dir, run_dir, steps, label = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
ref, run = losses(ref_dir), losses(run_dir)
assert sorted(run) == list(range(1, steps + 1)), sorted(run)
worst = max(abs(run[s] - ref[s]) / abs(ref[s]) for s in ref)
print(f"{label}: worst relative loss difference over steps 1-{steps}: {worst:.2e}")
sys.exit(0 if worst <= 1e-5 else 1)
