#!/usr/bin/env bash
# scaling_study.sh, tools/scaling_collect.py and tools/plot_scaling.py.
#   scaling_test.sh synthetic      dry-run plan; collect + plot a made-up study (known numbers); no cluster
#   cluster.sh run scaling_test.sh cluster R1HPC_BINARY   a real 1-2 rank strong+weak study of the tiny deck
# R1HPC_SCALING_PNG=FILE keeps the synthetic study's plot.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
deck=$root/tests/e2e/pretrain_tiny.deck

check_png() {
  "$PYTHON" - "$1" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10000, f"{sys.argv[1]}: not a PNG ({len(data)} bytes)"
print(f"{sys.argv[1]}: PNG, {len(data)} bytes")
PY
}

# shellcheck source=tests/slurm/cluster.sh
source "$here/cluster.sh"   # PYTHON; the cluster helpers for the cluster case

case ${1:-} in
synthetic)
  # The dry run: 2 modes x 3 sizes x 2 layouts, tp2 does not divide 1 rank: 10 jobs, nothing submitted.
  plan=$("$root/jobscripts/scaling_study.sh" submit --deck "$deck" --ranks 1,2,4 --layouts tp1,tp2 --site example-gpu \
         --out study --dry-run 2>"$work/plan.txt")
  cat "$work/plan.txt"
  [[ $(grep -c '^sbatch ' <<< "$plan") == 10 ]] || fail "expected 10 sbatch lines: $plan"
  grep -q "skip: strong 1 rank(s) tp2" "$work/plan.txt" || fail "tp2 on 1 rank was not skipped"
  grep -q -- "scale-weak-n4-tp2 .*--gpus-per-node=4 .*parallel.tensor=2 .*train.global_batch=32" <<< "$plan" \
    || fail "weak n4 tp2 line: $(grep weak-n4-tp2 <<< "$plan")"
  [[ ! -e study ]] || fail "the dry run wrote the study directory"

  # A made-up study: strong scaling at 80% efficiency per doubling, weak at 95%, with a breakdown.
  "$PYTHON" - <<'PY'
import json, os
os.makedirs("study/runs", exist_ok=True)
cols = "mode world nodes per_node tp pp ep layout global_batch run_dir job_id".split()
with open("study/plan.tsv", "w") as plan:
    plan.write("\t".join(cols) + "\n")
    for mode, eff in (("strong", 0.8), ("weak", 0.95)):
        for i, w in enumerate((1, 2, 4, 8)):
            run = f"study/runs/{mode}-n{w}-tp1"
            os.makedirs(run)
            tps = 1000.0 * w * eff ** i
            with open(f"{run}/metrics.jsonl", "w") as m:
                for step in range(1, 21):
                    slow = 5 if step == 1 else 1  # warm-up step, left out by the median
                    step_s = 8192 * (w if mode == "weak" else 1) / tps * slow  # global batch tokens / throughput
                    m.write(json.dumps({"step": step, "loss": 1.0, "tokens_per_s": tps / slow, "mfu": 0.4 * eff ** i,
                                        "step_s": step_s, "time": {"compute": 0.7 * step_s, "comm": 0.3 * step_s}}) + "\n")
            plan.write("\t".join([mode, str(w), "1", str(w), "1", "1", "0", "tp1", "8192", run, str(100 + w)]) + "\n")
PY
  "$PYTHON" "$root/tools/scaling_collect.py" study
  "$PYTHON" - <<'PY'
import csv
rows = list(csv.DictReader(open("study/scaling.csv")))
assert len(rows) == 8 and all(r["status"] == "ok" for r in rows), rows
r = next(r for r in rows if r["mode"] == "strong" and r["world"] == "8")
assert abs(float(r["tokens_per_s"]) - 8000 * 0.8 ** 3) < 1e-6, r["tokens_per_s"]
assert r["steps_measured"] == "18", r["steps_measured"]  # 20 steps, a tenth (2) left out
assert abs(float(r["time_compute_s"]) / float(r["step_s"]) - 0.7) < 1e-9
assert "tokens_per_s_per_rank" in r and not any(k.endswith("per_s") and k.startswith("time_") for k in r)
print("scaling.csv: columns", ", ".join(rows[0].keys()))
PY
  "$PYTHON" "$root/tools/plot_scaling.py" study/scaling.csv -o study/scaling.png --title "synthetic"
  check_png study/scaling.png
  if [[ -n ${R1HPC_SCALING_PNG:-} ]]; then cp study/scaling.png "$R1HPC_SCALING_PNG"; fi   # to look at it
  echo "PASS: dry-run plan, collect and plot of a synthetic study"
  ;;
cluster)
  bin=${2:?R1HPC binary}
  out=$("$root/jobscripts/scaling_study.sh" submit --deck "$deck" --ranks 1,2 --steps 30 --site localhost --bin "$bin" --out study)
  echo "$out"
  mapfile -t jobs < <(sed -n 's/^submitted .*: job \([0-9]\+\)$/\1/p' <<< "$out")
  ((${#jobs[@]} == 4)) || fail "expected 4 jobs"
  for j in "${jobs[@]}"; do wait_job_end "$j" 180 || fail "job $j did not end"; done
  for j in "${jobs[@]}"; do [[ $(job_field "$j" JobState) == COMPLETED ]] || { cat study/logs/*"-$j.out" >&2; fail "job $j: $(job_field "$j" JobState)"; }; done
  "$root/jobscripts/scaling_study.sh" collect study
  "$PYTHON" - <<'PY'
import csv
rows = list(csv.DictReader(open("study/scaling.csv")))
assert len(rows) == 4 and all(r["status"] == "ok" and float(r["tokens_per_s"]) > 0 for r in rows), rows
weak2 = next(r for r in rows if r["mode"] == "weak" and r["world"] == "2")
assert weak2["global_batch"] == "16", weak2
for r in rows:
    print(r["mode"], r["world"], r["layout"], f'{float(r["tokens_per_s"]):.0f} tok/s', f'step {float(r["step_s"]) * 1e3:.1f} ms')
PY
  "$PYTHON" "$root/tools/plot_scaling.py" study/scaling.csv -o study/scaling.png
  check_png study/scaling.png
  echo "PASS: a 4-point study ran on the test cluster, was collected and plotted"
  ;;
*) echo "usage: $0 synthetic | cluster R1HPC_BINARY" >&2; exit 2 ;;
esac
