#!/usr/bin/env python3
"""Draws the executed pipeline timeline ([parallel] timeline = true) and measures its bubble.

usage: pipeline_timeline.py RUN_DIR [--run N] [--replica D] [--out FILE.png] [--json]
RUN_DIR/pipeline_timeline/rank-*.jsonl hold one line per step of each rank's program (train/pipeline_timeline.hpp).
The last job's schedule run N (default: its last) of data-parallel replica D (default 0) is drawn as one row
per pipeline rank: forwards blue, backwards orange, weight-gradient passes (W, [parallel] split_weight_grad)
green (the rank's later chunk darker: the V's way up, dualpipe's second copy fed from the last rank), exchange waits grey, idle white, each pass labelled with its micro-batch; an overlapped pair
([parallel] overlap_chunk_pairs) is one box, its forward in the upper half and its backward in the lower. Prints, per rank, busy and wall time and the idle share,
then the bubble (the largest idle share), the schedule's formula (r1hpc's ideal_bubble) and the same
formula with the measured mean forward, backward (and W) times of a chunk run alone, and the mean time of a
pair beside the sum of its passes run alone (what the overlap saves). Each rank's clock starts when it
enters the schedule; the ranks enter within a collective's latency of each other."""
import argparse
import glob
import json
import os
import sys


def load(run_dir, run, replica):
    files = sorted(glob.glob(os.path.join(run_dir, "pipeline_timeline", "rank-*.jsonl")))
    if not files:
        sys.exit(f"pipeline_timeline.py: no {run_dir}/pipeline_timeline/rank-*.jsonl (run with [parallel] timeline = true)")
    lines = [json.loads(line) for f in files for line in open(f)]
    lines = [r for r in lines if r["replica"] == replica]
    if not lines:
        sys.exit(f"pipeline_timeline.py: no lines of replica {replica}")
    # Each rank stamps its job when it opens its file (the ranks' clocks may differ by a second): keep
    # every rank's latest job.
    job = {}
    for r in lines:
        job[r["pp_rank"]] = max(job.get(r["pp_rank"], ""), r["job"])
    lines = [r for r in lines if r["job"] == job[r["pp_rank"]]]
    if run is None:
        run = max(r["run"] for r in lines)
    lines = [r for r in lines if r["run"] == run]
    if not lines:
        sys.exit(f"pipeline_timeline.py: the latest job has no schedule run {run}")
    return lines


def formula(schedule, p, v, m, f, b, w=None):
    """The idle share with every forward taking f, every backward b and every W w (messages free)."""
    if schedule == "dualpipev" and w is not None:  # W split off: (p - 1) f idle, exact while b <= w
        idle = (p - 1) * f
        return idle / (idle + 2 * m * (f + b + w))
    if schedule == "dualpipev":  # r1hpc's ideal_bubble: exact at b = 2f, close to it around
        idle = (2 * p - 3) * f + (p - 1) * b
        return idle / (idle + 2 * m * (f + b))
    if schedule == "dualpipe" and w is not None:  # m chunk passes per rank; (p/2 - 1) f idle while b <= w
        idle = (p / 2 - 1) * f
        return idle / (idle + m * (f + b + w))
    if schedule == "dualpipe":  # (2p - 5) f idle at b = 2f (none at p = 2), scaled with f + b
        idle = max(0, 2 * p - 5) * (f + b) / 3
        return idle / (idle + m * (f + b))
    return (p - 1) / (v * m + p - 1)


def summarise(lines):
    runs = {r["pp_rank"]: r for r in lines if r["kind"] == "run"}
    passes = [r for r in lines if r["kind"] in ("F", "B", "W") and "paired_with" not in r]
    pairs = [r for r in lines if r["kind"] == "F" and "paired_with" in r]
    first = next(iter(runs.values()))
    split = first.get("split_weight", False)
    mean = {k: sum(r["end_s"] - r["start_s"] for r in passes if r["kind"] == k) /
            max(1, sum(1 for r in passes if r["kind"] == k)) for k in ("F", "B", "W")}
    mean_pair = sum(r["end_s"] - r["start_s"] for r in pairs) / max(1, len(pairs))
    v = 2 if first["schedule"] in ("dualpipev", "dualpipe") else first["virtual_stages"]
    return {
        "schedule": first["schedule"], "stages": first["stages"], "virtual_stages": first["virtual_stages"],
        "micro_batches": first["micro_batches"], "run": first["run"], "split_weight": split,
        "ranks": {str(k): {"busy_s": r["busy_s"], "wall_s": r["wall_s"], "idle": 1 - r["busy_s"] / r["wall_s"]}
                  for k, r in sorted(runs.items())},
        "bubble_fraction": max(r["bubble_fraction"] for r in runs.values()),
        "ideal_bubble": first["ideal_bubble"],
        "mean_forward_s": mean["F"], "mean_backward_s": mean["B"], "mean_weight_s": mean["W"],
        "pairs": len(pairs), "mean_pair_s": mean_pair,
        "formula_with_measured_times": formula(first["schedule"], first["stages"], v, first["micro_batches"],
                                               mean["F"], mean["B"], mean["W"] if split else None),
    }


def draw(lines, summary, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = summary["stages"]
    fig, ax = plt.subplots(figsize=(10, 0.5 * p + 1.1))
    colours = {("F", 0): "#9ecae1", ("F", 1): "#3182bd", ("B", 0): "#fdae6b", ("B", 1): "#e6550d",
               ("W", 0): "#a1d99b", ("W", 1): "#31a354"}
    end = max(r["end_s"] for r in lines if r["kind"] != "run")
    for r in lines:
        if r["kind"] == "run":
            continue
        row = p - 1 - r["pp_rank"]
        width = r["end_s"] - r["start_s"]
        if r["kind"] == "wait":
            ax.broken_barh([(r["start_s"], width)], (row + 0.1, 0.8), facecolors="#bdbdbd")
            continue
        later = r["chunk"] // p  # the rank's first chunk, or a later one (interleaved, the V's way up, dualpipe's copy)
        # A pair's forward fills the box's upper half, its backward the lower.
        low, height = (row + 0.1, 0.8) if "paired_with" not in r else (row + (0.5 if r["kind"] == "F" else 0.1), 0.4)
        ax.broken_barh([(r["start_s"], width)], (low, height), facecolors=colours[(r["kind"], min(later, 1))],
                       edgecolors="black", linewidth=0.3)
        if width > end / 90:
            ax.text(r["start_s"] + width / 2, low + height / 2, str(r["micro"]), ha="center", va="center", fontsize=6)
    ax.set_yticks([p - 1 - k + 0.5 for k in range(p)], [f"rank {k}" for k in range(p)])
    ax.set_xlim(0, end)
    ax.set_xlabel("seconds since the schedule started")
    name = summary["schedule"] + (" + W split" if summary["split_weight"] else "")
    ax.set_title(f"{name}: {p} stages, {summary['micro_batches']} micro-batches; bubble "
                 f"{summary['bubble_fraction']:.3f} measured, {summary['formula_with_measured_times']:.3f} formula",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=80)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--run", type=int, default=None)
    ap.add_argument("--replica", type=int, default=0)
    ap.add_argument("--out", default="")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    a = ap.parse_args()
    lines = load(a.run_dir, a.run, a.replica)
    s = summarise(lines)
    if a.json:
        print(json.dumps(s))
    else:
        for k, r in s["ranks"].items():
            print(f"rank {k}: busy {r['busy_s']:.4f} s of {r['wall_s']:.4f} s, idle {r['idle']:.3f}")
        print(f"{s['schedule']}: bubble {s['bubble_fraction']:.3f} measured, {s['ideal_bubble']:.3f} ideal, "
              f"{s['formula_with_measured_times']:.3f} with the measured F = {s['mean_forward_s'] * 1e3:.2f} ms, "
              f"B = {s['mean_backward_s'] * 1e3:.2f} ms" +
              (f", W = {s['mean_weight_s'] * 1e3:.2f} ms" if s["split_weight"] else ""))
        if s["pairs"]:
            print(f"{s['pairs']} overlapped pairs: {s['mean_pair_s'] * 1e3:.2f} ms each, against "
                  f"F + B = {(s['mean_forward_s'] + s['mean_backward_s']) * 1e3:.2f} ms run apart")
    if a.out:
        draw(lines, s, a.out)


if __name__ == "__main__":
    main()
