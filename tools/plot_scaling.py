#!/usr/bin/env python3
"""Plots a scaling study's CSV (tools/scaling_collect.py) to one PNG: per mode (strong, weak) the
throughput against ranks with the ideal-scaling line from the smallest size of each layout, the
scaling efficiency, MFU when the runs report it, and the step-time breakdown of each point.

    tools/plot_scaling.py scaling.csv [-o scaling.png] [--title TEXT]

Ideal scaling: throughput (tokens/s) proportional to the ranks, in both modes. In strong scaling the
global batch is fixed, so this is the time per step falling as 1/ranks; in weak scaling the batch grows
with the ranks and the step time ideally stays flat. Efficiency = measured / ideal.
"""
import argparse
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from scaling_collect import is_time_part  # noqa: E402


def number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def load(path):
    with open(path) as f:
        rows = [r for r in csv.DictReader(f) if r.get("status", "ok") == "ok" and number(r.get("tokens_per_s"))]
    if not rows:
        sys.exit(f"plot_scaling: error: {path} has no point with tokens_per_s")
    for r in rows:
        r["world"] = int(float(r["world"]))
    return rows


def breakdown_columns(rows):
    cols = set()
    for r in rows:
        cols |= {k for k, v in r.items() if is_time_part(k) and number(v) is not None}
    return sorted(cols)


def plot_mode(axes, mode, rows):
    ax_tp, ax_eff, ax_mfu, ax_parts = axes
    layouts = sorted({r["layout"] for r in rows})
    worlds = sorted({r["world"] for r in rows})
    for layout in layouts:
        pts = sorted((r for r in rows if r["layout"] == layout), key=lambda r: r["world"])
        w = [p["world"] for p in pts]
        tps = [number(p["tokens_per_s"]) for p in pts]
        base_w, base_t = w[0], tps[0]
        ideal = [base_t * x / base_w for x in w]
        line, = ax_tp.plot(w, tps, "o-", label=f"{layout}")
        ax_tp.plot(w, ideal, "--", color=line.get_color(), alpha=0.6, label=f"{layout} ideal")
        ax_eff.plot(w, [t / i for t, i in zip(tps, ideal)], "o-", color=line.get_color(), label=layout)
        mfu = [number(p.get("mfu")) for p in pts]
        if any(m is not None for m in mfu):
            ax_mfu.plot([x for x, m in zip(w, mfu) if m is not None], [100 * m for m in mfu if m is not None], "o-",
                        color=line.get_color(), label=layout)
    for ax in (ax_tp, ax_eff, ax_mfu):
        ax.set_xscale("log", base=2)
        ax.set_xticks(worlds, [str(x) for x in worlds])
        ax.set_xlabel("ranks (GPUs)")
        ax.grid(True, alpha=0.3)
    ax_tp.set_yscale("log")
    ax_tp.set_ylabel("tokens/s")
    ax_tp.set_title(f"{mode} scaling: throughput")
    ax_tp.legend(fontsize=7)
    ax_eff.axhline(1.0, color="gray", ls="--", lw=1)
    ax_eff.set_ylim(0, 1.15)
    ax_eff.set_ylabel("efficiency (measured / ideal)")
    ax_eff.set_title(f"{mode} scaling: efficiency")
    ax_mfu.set_ylabel("MFU (%)")
    ax_mfu.set_title("MFU" if ax_mfu.lines else "MFU (not reported)")

    # Step-time breakdown: one stacked bar per point (components), step time as a marker.
    parts = breakdown_columns(rows)
    pts = sorted(rows, key=lambda r: (r["layout"], r["world"]))
    labels = [f"{p['layout']}\nn{p['world']}" for p in pts]
    x = range(len(pts))
    bottom = [0.0] * len(pts)
    for col in parts:
        vals = [number(p.get(col)) or 0.0 for p in pts]
        ax_parts.bar(x, vals, bottom=bottom, label=col[:-2])
        bottom = [b + v for b, v in zip(bottom, vals)]
    steps = [number(p.get("step_s")) for p in pts]
    ax_parts.plot(x, [s if s is not None else float("nan") for s in steps], "k_", markersize=14, mew=2, label="step")
    ax_parts.set_xticks(list(x), labels, fontsize=7)
    ax_parts.set_ylabel("seconds per step")
    ax_parts.set_title(f"{mode} scaling: step time" + (" breakdown" if parts else ""))
    ax_parts.legend(fontsize=7)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv")
    ap.add_argument("-o", "--output", default="scaling.png")
    ap.add_argument("--title", default="")
    args = ap.parse_args()
    rows = load(args.csv)
    modes = [m for m in ("strong", "weak") if any(r["mode"] == m for r in rows)]
    modes += sorted({r["mode"] for r in rows} - set(modes))
    fig, axes = plt.subplots(len(modes), 4, figsize=(20, 4.5 * len(modes)), squeeze=False)
    for row_axes, mode in zip(axes, modes):
        plot_mode(row_axes, mode, [r for r in rows if r["mode"] == mode])
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)
    print(f"plot_scaling: {len(rows)} point(s), modes {', '.join(modes)} -> {args.output}")


if __name__ == "__main__":
    main()
