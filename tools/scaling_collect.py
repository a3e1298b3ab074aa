#!/usr/bin/env python3
"""Collects a scaling study (jobscripts/scaling_study.sh) into one CSV: per point, the medians over the
measured steps of tokens/s, MFU, step time and every step-time component that metrics.jsonl records.

    tools/scaling_collect.py STUDY_DIR [--csv FILE] [--skip N]

STUDY_DIR/plan.tsv names the points and their run directories; the CSV (default STUDY_DIR/scaling.csv)
has one row per point. The first steps are warm-up (allocations, first-touch, autotuning) and are left
out: --skip N, default a tenth of the steps (at least 1 when there are 2 or more). The step-time
breakdown is every numeric field named *_s other than step_s and rates (*per_s), and the fields of a nested "time" or
"timers" object (as time_<name>_s); a point whose run wrote nothing gets status 'missing'.
"""
import argparse
import csv
import json
import os
import statistics
import sys

BASE = ["mode", "world", "nodes", "per_node", "tp", "pp", "ep", "layout", "global_batch"]
MEASURED = ["steps_measured", "tokens_per_s", "tokens_per_s_per_rank", "mfu", "step_s"]


def is_time_part(key):
    """A field holding seconds of a step part: *_s, but not step_s (the whole) and not a rate (*per_s)."""
    return key.endswith("_s") and key != "step_s" and not key.endswith("per_s")


def step_components(record):
    """The step-time breakdown of one metrics record, as {column: seconds}."""
    out = {}
    for key, value in record.items():
        if is_time_part(key) and isinstance(value, (int, float)):
            out[key] = float(value)
        elif key in ("time", "timers") and isinstance(value, dict):
            for name, seconds in value.items():
                if isinstance(seconds, (int, float)):
                    out[f"time_{name}_s"] = float(seconds)
    return out


def summarize(metrics_path, skip):
    records = []
    with open(metrics_path) as f:
        for line in f:
            if line.strip():
                records.append(json.loads(line))
    by_step = {}
    for r in records:  # a step logged twice (a resumed run): the later record wins
        by_step[r["step"]] = r
    steps = [by_step[s] for s in sorted(by_step)]
    if skip is None:
        skip = max(1, len(steps) // 10) if len(steps) >= 2 else 0
    measured = steps[skip:] or steps[-1:]
    if not measured:
        return None

    def median(key):
        values = [r[key] for r in measured if isinstance(r.get(key), (int, float))]
        return statistics.median(values) if values else ""

    row = {"steps_measured": len(measured), "tokens_per_s": median("tokens_per_s"), "mfu": median("mfu"),
           "step_s": median("step_s")}
    parts = {}
    for r in measured:
        for key, value in step_components(r).items():
            parts.setdefault(key, []).append(value)
    row.update({key: statistics.median(values) for key, values in parts.items()})
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("study", help="the study directory (holds plan.tsv)")
    ap.add_argument("--csv", help="output CSV (default STUDY/scaling.csv)")
    ap.add_argument("--skip", type=int, help="warm-up steps left out (default: a tenth)")
    args = ap.parse_args()
    plan_path = os.path.join(args.study, "plan.tsv")
    if not os.path.exists(plan_path):
        sys.exit(f"scaling_collect: error: no {plan_path} (made by jobscripts/scaling_study.sh submit)")
    with open(plan_path) as f:
        plan = list(csv.DictReader(f, delimiter="\t"))

    rows, extra = [], []
    for point in plan:
        row = {k: point.get(k, "") for k in BASE}
        row.update(job_id=point.get("job_id", ""), run_dir=point["run_dir"], status="missing")
        metrics = os.path.join(point["run_dir"], "metrics.jsonl")
        summary = summarize(metrics, args.skip) if os.path.exists(metrics) else None
        if summary:
            row.update(summary, status="ok")
            if summary["tokens_per_s"] != "":
                row["tokens_per_s_per_rank"] = summary["tokens_per_s"] / int(point["world"])
            extra += [k for k in summary if k not in MEASURED and k not in extra]
        rows.append(row)

    out = args.csv or os.path.join(args.study, "scaling.csv")
    columns = BASE + MEASURED + sorted(extra) + ["job_id", "status", "run_dir"]
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    missing = [r["run_dir"] for r in rows if r["status"] != "ok"]
    print(f"scaling_collect: {len(rows)} point(s), {len(rows) - len(missing)} with metrics -> {out}")
    for d in missing:
        print(f"scaling_collect: no metrics in {d}", file=sys.stderr)


if __name__ == "__main__":
    main()
