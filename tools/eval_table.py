#!/usr/bin/env python3
"""The evaluation table of a chain's runs directory (runs/tiny, runs/small), in markdown.

usage: eval_table.py RUNS_DIR [PHASE ...]

One row per phase, in the order of RUNS_DIR/logs/times.tsv (lines `PHASE SECONDS EXIT`, written by
scripts/run_chain.sh and scripts/gpu/chain_small.sh; a phase run more than once adds up), or of the PHASEs
given. A phase with a report RUNS_DIR/09_evaluate/PHASE/eval.json gets its held-out scores: pass@1, pass@k
(the largest k), cons@k, format rate, language consistency, mean response length; every phase its wall
time and that of its evaluation (times.tsv's `09_evaluate_PHASE`). Phases that write no checkpoint (data,
reward models) show their wall time only."""
import argparse
import json
import os
import sys


def read_times(path):
    """{phase: [seconds, last exit code]} in the order first seen."""
    times = {}
    if os.path.isfile(path):
        for line in open(path):
            words = line.split()
            if len(words) < 2 or line.startswith("#"):
                continue
            entry = times.setdefault(words[0], [0, "0"])
            entry[0] += int(words[1])
            entry[1] = words[2] if len(words) > 2 else "0"
    return times


def minutes(seconds):
    return f"{seconds // 60}:{seconds % 60:02d}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs")
    ap.add_argument("phases", nargs="*")
    args = ap.parse_args()
    times = read_times(os.path.join(args.runs, "logs", "times.tsv"))
    phases = args.phases or [p for p in times if not p.startswith("09_evaluate")]
    evals = {}
    for p in phases:
        path = os.path.join(args.runs, "09_evaluate", p, "eval.json")
        if os.path.isfile(path):
            evals[p] = json.load(open(path))
    if not evals:
        sys.exit(f"eval_table.py: no {args.runs}/09_evaluate/PHASE/eval.json for the phases {' '.join(phases)}")

    first = next(iter(evals.values()))
    n = first["samples_per_prompt"]
    k = max(first["pass_k"])
    s = first["sampling"]
    print(f"Evaluation on the held-out split ({first['overall']['prompts']} prompts of {first['dataset']}, "
          f"{n} samples per prompt, temperature {s['temperature']:g}, top-p {s['top_p']:g}, "
          f"at most {s['max_new_tokens']} new tokens):")
    print()
    cols = ["pass@1"] + ([f"pass@{k}"] if k != 1 else []) + [f"cons@{n}", "format", "language", "length"]
    print("| phase | step | " + " | ".join(cols) + " | phase time | eval time |")
    print("|---" * (len(cols) + 4) + "|")
    for p in phases:
        cells = [""] * (len(cols) + 1)
        if p in evals:
            e = evals[p]
            o = e["overall"]
            if e["samples_per_prompt"] != n or e["overall"]["prompts"] != first["overall"]["prompts"]:
                print(f"eval_table.py: {p} was evaluated on another protocol", file=sys.stderr)
            keys = ["pass@1"] + ([f"pass@{k}"] if k != 1 else []) + [f"cons@{n}", "format_rate", "language_consistency"]
            cells = [str(e["checkpoint_step"])] + [f"{o.get(key, float('nan')):.3f}" for key in keys]
            cells.append(f"{o['response_length_mean']:.0f}")
        t = times.get(p)
        te = times.get(f"09_evaluate_{p}")
        phase_time = minutes(t[0]) + (f" (exit {t[1]})" if t[1] != "0" else "") if t else ""
        print(f"| {p} | " + " | ".join(cells) + f" | {phase_time} | {minutes(te[0]) if te else ''} |")
    total = sum(v[0] for v in times.values())
    if total:
        print()
        print(f"Wall time of every phase and evaluation in {args.runs}/logs/times.tsv: {minutes(total)} (m:s).")


if __name__ == "__main__":
    main()
