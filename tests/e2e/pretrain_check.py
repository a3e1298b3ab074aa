#!/usr/bin/env python3
"""Checks a pretrain run's metrics.jsonl: the loss fell by a clear margin and, when the run balanced its
experts (gamma > 0), the max/mean expert load fell over training and ends below an unbalanced run's.
usage: pretrain_check.py RUN_DIR [UNBALANCED_RUN_DIR]"""
import json
import sys


def records(run):
    with open(f"{run}/metrics.jsonl") as f:
        return [json.loads(line) for line in f]


def load_ratio(rec):
    return max(layer["max_over_mean"] for layer in rec["expert_load"])


def mean(xs):
    return sum(xs) / len(xs)


def main():
    recs = records(sys.argv[1])
    first, last = mean([r["loss"] for r in recs[:10]]), mean([r["loss"] for r in recs[-10:]])
    print(f"loss: first 10 steps {first:.3f}, last 10 steps {last:.3f}")
    ok = last < 0.6 * first
    if not ok:
        print("FAIL: the loss did not fall below 60% of its starting value")
    early, late = mean([load_ratio(r) for r in recs[:30]]), mean([load_ratio(r) for r in recs[-30:]])
    print(f"expert load max/mean: first 30 steps {early:.3f}, last 30 steps {late:.3f}")
    if late >= early:
        print("FAIL: the expert load did not become more even")
        ok = False
    if len(sys.argv) > 2:
        other = mean([load_ratio(r) for r in records(sys.argv[2])[-30:]])
        print(f"without balancing (gamma = 0), last 30 steps: {other:.3f}")
        if late >= other:
            print("FAIL: balancing did not beat the unbalanced run")
            ok = False
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
