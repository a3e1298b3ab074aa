#!/usr/bin/env python3
"""The evaluation table of a chain's runs directory (runs/tiny, runs/small), in markdown.

usage: eval_table.py RUNS_DIR [PHASE ...] [--teacher T --student S ... [--distill D --distill-data A --rl R]]
       eval_table.py RUNS_DIR [PHASE ...] --levels

One row per phase, in the order of RUNS_DIR/logs/times.tsv (lines `PHASE SECONDS EXIT`, written by
scripts/run_chain.sh and scripts/gpu/chain_small.sh; a phase run more than once adds up), or of the PHASEs
given. A phase with a report RUNS_DIR/09_evaluate/PHASE/eval.json gets its held-out scores: pass@1, pass@k
(the largest k), cons@k, format rate, language consistency, mean response length; every phase its wall
time and that of its evaluation (times.tsv's `09_evaluate_PHASE`). Phases that write no checkpoint (data,
reward models) show their wall time only.

With --teacher and --student, one line per student: its pass@1 as a share of the teacher's ("student/teacher
pass@1 ratio"). With --distill, --distill-data and --rl, R1's comparison on the student base: the distilled
student (D, trained on A's samples) against GRPO on the same base (R), with the GPU time of each (A + D's
wall time against R's).

With --levels, the reports RUNS_DIR/09_evaluate_levels/PHASE/eval.json of an evaluation on every difficulty
level (tasks named kind/L<n>): pass@1 per level, and per task family and level."""
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


def read_evals(runs, subdir, phases):
    """{phase: eval.json} of the phases evaluated in RUNS/SUBDIR/PHASE/."""
    evals = {}
    for p in phases:
        path = os.path.join(runs, subdir, p, "eval.json")
        if os.path.isfile(path):
            evals[p] = json.load(open(path))
    if not evals:
        sys.exit(f"eval_table.py: no {runs}/{subdir}/PHASE/eval.json for the phases {' '.join(phases)}")
    return evals


def print_protocol(e, what):
    s = e["sampling"]
    print(f"{what} ({e['overall']['prompts']} prompts of {e['dataset']}, {e['samples_per_prompt']} samples per prompt, "
          f"temperature {s['temperature']:g}, top-p {s['top_p']:g}, at most {s['max_new_tokens']} new tokens):")
    print()


def main_table(times, evals, phases):
    first = next(iter(evals.values()))
    n = first["samples_per_prompt"]
    k = max(first["pass_k"])
    print_protocol(first, "Evaluation on the held-out split")
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


def pass1(evals, phase, flag):
    if phase not in evals:
        sys.exit(f"eval_table.py: {flag} {phase} has no evaluation report among the phases")
    return evals[phase]["overall"]["pass@1"]


def students(args, times, evals):
    """The student/teacher ratio of each student, and distillation against RL on the student base."""
    teacher = pass1(evals, args.teacher, "--teacher")
    print()
    for s in args.student:
        student = pass1(evals, s, "--student")
        ratio = f"{student / teacher:.3f} ({100 * student / teacher:.0f}%)" if teacher > 0 else "n/a (the teacher's pass@1 is 0)"
        print(f"student/teacher pass@1 ratio: {s} {student:.3f} / {args.teacher} {teacher:.3f} = {ratio}")
    if not (args.distill and args.rl):
        return
    distill, rl = pass1(evals, args.distill, "--distill"), pass1(evals, args.rl, "--rl")
    distill_time = sum(times.get(p, [0])[0] for p in [args.distill_data, args.distill] if p)
    rl_time = times.get(args.rl, [0])[0]
    cost = " + ".join(p for p in [args.distill_data, args.distill] if p)
    lead = distill - rl
    verdict = (f"distillation ahead by {100 * lead:.1f} points" if lead > 0 else
               f"RL ahead by {-100 * lead:.1f} points" if lead < 0 else "a tie")
    print(f"distillation vs RL on the student base: {args.distill} pass@1 {distill:.3f} (step "
          f"{evals[args.distill]['checkpoint_step']}; {cost} {minutes(distill_time)}) vs {args.rl} {rl:.3f} (step "
          f"{evals[args.rl]['checkpoint_step']}; {minutes(rl_time)}): {verdict}")


def level_of(task):
    """("countdown", 3) for "countdown/L3"; None for a task without a level."""
    kind, _, level = task.partition("/L")
    return (kind, int(level)) if level.isdigit() else None


def levels_table(evals, phases):
    """pass@1 per difficulty level (prompt-weighted over the families), then per family and level."""
    first = next(iter(evals.values()))
    print_protocol(first, "Evaluation by difficulty level")
    cells = {}  # phase -> {(kind, level): (pass@1, prompts)}
    for p, e in evals.items():
        cells[p] = {level_of(t): (m["pass@1"], m["prompts"]) for t, m in e["tasks"].items() if level_of(t)}
    keys = sorted({key for c in cells.values() for key in c})
    if not keys:
        sys.exit("eval_table.py: --levels: the reports hold no kind/L<n> tasks (evaluate with [data] synthetic_levels)")
    levels = sorted({lvl for _, lvl in keys})
    kinds = sorted({kind for kind, _ in keys})
    print("| phase | overall | " + " | ".join(f"L{lvl}" for lvl in levels) + " |")
    print("|---" * (len(levels) + 2) + "|")
    for p in phases:
        if p not in cells:
            continue
        row = []
        for lvl in levels:
            got = [v for (kind, l), v in cells[p].items() if l == lvl]
            prompts = sum(n for _, n in got)
            row.append(f"{sum(x * n for x, n in got) / prompts:.3f}" if prompts else "")
        print(f"| {p} | {evals[p]['overall']['pass@1']:.3f} | " + " | ".join(row) + " |")
    print()
    print("pass@1 per task family, levels " + " / ".join(f"L{lvl}" for lvl in levels) + ":")
    print()
    print("| phase | " + " | ".join(kinds) + " |")
    print("|---" * (len(kinds) + 1) + "|")
    for p in phases:
        if p not in cells:
            continue
        row = [" / ".join(f"{cells[p][(kind, lvl)][0]:.2f}" if (kind, lvl) in cells[p] else "-" for lvl in levels)
               for kind in kinds]
        print(f"| {p} | " + " | ".join(row) + " |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs")
    ap.add_argument("phases", nargs="*")
    ap.add_argument("--teacher", help="the phase whose pass@1 the students are measured against")
    ap.add_argument("--student", action="append", default=[], help="a student phase (repeatable)")
    ap.add_argument("--distill", help="the distilled student's phase")
    ap.add_argument("--distill-data", help="the phase that sampled its training data (its GPU time counts)")
    ap.add_argument("--rl", help="the phase that ran RL on the same student base")
    ap.add_argument("--levels", action="store_true", help="the evaluation by difficulty level (09_evaluate_levels)")
    args = ap.parse_args()
    if args.student and not args.teacher:
        ap.error("--student needs --teacher")
    if bool(args.distill) != bool(args.rl) or (args.distill and not args.teacher):
        ap.error("--distill and --rl come together, with --teacher")
    times = read_times(os.path.join(args.runs, "logs", "times.tsv"))
    phases = args.phases or [p for p in times if not p.startswith("09_evaluate")]
    if args.levels:
        levels_table(read_evals(args.runs, "09_evaluate_levels", phases), phases)
        return
    evals = read_evals(args.runs, "09_evaluate", phases)
    main_table(times, evals, phases)
    if args.teacher:
        students(args, times, evals)
    total = sum(v[0] for v in times.values())
    if total:
        print()
        print(f"Wall time of every phase and evaluation in {args.runs}/logs/times.tsv: {minutes(total)} (m:s).")


if __name__ == "__main__":
    main()
