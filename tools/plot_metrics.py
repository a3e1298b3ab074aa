#!/usr/bin/env python3
"""Plots the curves of a run's metrics.jsonl (one PNG, a panel per metric) against the step.

usage: plot_metrics.py RUN_DIR [--keys reward_mean,accuracy,...] [--out FILE.png]
Without --keys: every numeric metric that changes over the run (pretrain: loss, lr, grad_norm, ...;
grpo: reward, accuracy, format rate, response length, KL, clip fraction, ...)."""
import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--keys", default="")
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    by_step = {}
    with open(os.path.join(a.run, "metrics.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            by_step[r["step"]] = r  # a step run twice after a restart keeps its last record
    recs = [by_step[s] for s in sorted(by_step)]
    if not recs:
        raise SystemExit(f"{a.run}/metrics.jsonl has no records")
    keys = [k for k in a.keys.split(",") if k] or [
        k for k, v in recs[0].items()
        if k != "step" and isinstance(v, (int, float)) and len({r.get(k) for r in recs}) > 1]
    cols = 3
    rows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows), squeeze=False)
    steps = [r["step"] for r in recs]
    for ax, k in zip(axes.flat, keys):
        ax.plot(steps, [r.get(k, float("nan")) for r in recs], lw=1.2)
        ax.set_title(k, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.tight_layout()
    out = a.out or os.path.join(a.run, "metrics.png")
    fig.savefig(out, dpi=110)
    print(out)


if __name__ == "__main__":
    main()
