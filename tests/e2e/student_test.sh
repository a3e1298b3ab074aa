#!/usr/bin/env bash
# R1's student comparison at tiny scale (CPU), from the tiny chain's teacher that chain_tiny_e2e leaves in
# CHAIN_DIR (its final model 07_rl_all, that model's evaluation and 08a's curated samples): a Qwen2-architecture
# student base is pretrained (00s), distilled on the teacher's samples (08), and trained by GRPO from the same
# base for the same wall time as 08a + 08 (08r, stopped by its time limit: exit 75); each is evaluated, on
# level 1 and on levels 1-4, and tools/eval_table.py prints each student's pass@1 ratio to the teacher and
# distillation against RL. The same flow as the GPU-scale chain's `student`, `eval` and `levels` pieces
# (scripts/gpu/chain_small.sh), with the tiny decks and --set overrides.
#   usage: student_test.sh R1HPC_BINARY PYTHON CHAIN_DIR   (2 ranks per phase)
set -uo pipefail
bin=$1
py=$2
chain=$3
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=tests/e2e/common.sh
source "$here/common.sh"
[[ -s $chain/runs/tiny/08a_distill_data/sft.jsonl && -s $chain/runs/tiny/09_evaluate/07_rl_all/eval.json ]] \
  || fail "no tiny chain in $chain: chain_tiny_e2e leaves it there (ctest runs it first: fixture tiny_chain)"
cp -r "$chain/runs" .
T=runs/tiny
# The chain's own student (from scratch) is not this test's: its times leave the table and the rule.
awk '$1 != "08_distill" && $1 != "09_evaluate_08_distill"' "$chain/$T/logs/times.tsv" >$T/logs/times.tsv
decks=$root/inputs/pipeline
launch=(mpiexec -n 2 --oversubscribe)
student=(--set model.preset=tiny-qwen2)  # the tiny chain's student architecture (08_distill_tiny.deck)
phase() {  # NAME EXPECTED_EXIT DECK [--set ...]: one phase on 2 ranks, its wall time appended to times.tsv
  local name=$1 want=$2 deck=$3 start=$SECONDS rc
  shift 3
  "${launch[@]}" "$bin" "$decks/$deck" "$@" >"$name.log" 2>&1
  rc=$?
  echo "$name $((SECONDS - start)) $rc" >>$T/logs/times.tsv
  echo "$name: $((SECONDS - start))s, exit $rc"
  [[ $rc == "$want" ]] || { tail -n 30 "$name.log"; fail "$name exited $rc, not $want"; }
}

# 00s: the student base, pretrained on the teacher's corpus.
phase 00s_pretrain_student 0 00_pretrain_tiny.deck "${student[@]}" --set run.output_dir=$T/00s_pretrain_student \
  --set run.max_steps=40 --set train.log_every=10
# 08: distillation, SFT of that base on the teacher's curated samples.
phase 08_distill 0 08_distill_tiny.deck "${student[@]}" --set checkpoint.load=$T/00s_pretrain_student/checkpoints \
  --set run.max_steps=20 --set optim.lr=1e-3
# 08r: R1-Zero's GRPO on the same base, for the wall time of 08a + 08 (the same-GPU-time rule); a step bound
# it cannot reach, so the time limit ends it.
seconds=$(awk '$1 == "08a_distill_data" || $1 == "08_distill" { s += $2 } END { print s + 0 }' $T/logs/times.tsv)
((seconds > 0)) || fail "no wall time of 08a_distill_data and 08_distill in $T/logs/times.tsv"
minutes=$(awk -v s="$seconds" 'BEGIN { printf "%.3f", s / 60 }')
echo "same GPU time: 08a_distill_data + 08_distill took ${seconds}s: 08r_rl_student gets run.time_limit_minutes=$minutes"
phase 08r_rl_student 75 01_r1zero_tiny.deck "${student[@]}" --set checkpoint.load=$T/00s_pretrain_student/checkpoints \
  --set run.output_dir=$T/08r_rl_student --set run.max_steps=100000 --set "run.time_limit_minutes=$minutes"
grep -q "on request (signal or \[run\] time_limit_minutes); checkpointed, exit 75" 08r_rl_student.log \
  || { tail -n 20 08r_rl_student.log; fail "08r did not stop at its time limit with a checkpoint"; }

# Each student evaluated as the teacher was (level 1), and the distilled and RL students on levels 1-4.
for run in 00s_pretrain_student 08_distill 08r_rl_student; do
  phase "09_evaluate_$run" 0 09_evaluate_tiny.deck "${student[@]}" --set checkpoint.load=$T/$run/checkpoints \
    --set run.output_dir=$T/09_evaluate/$run
done
for run in 08_distill 08r_rl_student; do
  phase "09_evaluate_levels_$run" 0 09_evaluate_tiny.deck "${student[@]}" --set checkpoint.load=$T/$run/checkpoints \
    --set run.output_dir=$T/09_evaluate_levels/$run --set data.synthetic_levels=1,1,1,1
done

compare=(--teacher 07_rl_all --student 00s_pretrain_student --student 08_distill --student 08r_rl_student
         --distill 08_distill --distill-data 08a_distill_data --rl 08r_rl_student)
"$py" "$root/tools/eval_table.py" $T 07_rl_all 00s_pretrain_student 08_distill 08r_rl_student "${compare[@]}" | tee table.md
[[ ${PIPESTATUS[0]} == 0 ]] || fail "eval_table.py"
"$py" "$root/tools/eval_table.py" $T 08_distill 08r_rl_student --levels | tee levels.md
[[ ${PIPESTATUS[0]} == 0 ]] || fail "eval_table.py --levels"

EVAL_TABLE="$root/tools/eval_table.py" CKPT="$root/tools/ckpt.py" "$py" - <<'PY' || fail "the student flow"
import json, os, re, shutil, subprocess, sys
T = "runs/tiny"
recs = lambda run: [json.loads(l) for l in open(f"{T}/{run}/metrics.jsonl")]
mean = lambda xs: sum(xs) / len(xs)
def ev(d, run):
    return json.load(open(f"{T}/{d}/{run}/eval.json"))

# 00s pretrains a Qwen2 model; 08 and 08r start from its checkpoint (the parent each records).
base = recs("00s_pretrain_student")
print(f"00s_pretrain_student loss {mean([r['loss'] for r in base[:5]]):.3f} -> {mean([r['loss'] for r in base[-5:]]):.3f}")
assert mean([r["loss"] for r in base[-5:]]) < 0.8 * mean([r["loss"] for r in base[:5]]), "the student base did not learn"
for run in ["08_distill", "08r_rl_student"]:
    lineage = subprocess.run([sys.executable, os.environ["CKPT"], "lineage", f"{T}/{run}/checkpoints"], capture_output=True,
                             text=True, check=True).stdout
    assert re.search(r"^  \S*/00s_pretrain_student/checkpoints/step-00000040  stage pretrain", lineage, re.M), (run, lineage)
d = recs("08_distill")
print(f"08_distill response loss {mean([r['loss'] for r in d[:3]]):.3f} -> {mean([r['loss'] for r in d[-3:]]):.3f}")
assert mean([r["loss"] for r in d[-3:]]) < mean([r["loss"] for r in d[:3]]), "the distilled student did not learn"
rl = recs("08r_rl_student")
assert 0 < len(rl) < 100000 and all("reward_mean" in r for r in rl), len(rl)
print(f"08r_rl_student: {len(rl)} GRPO steps before its time limit")

# Every student report is of a Qwen2 checkpoint, on the teacher's protocol; the level reports have kind/L<n> tasks.
teacher = ev("09_evaluate", "07_rl_all")
for run in ["00s_pretrain_student", "08_distill", "08r_rl_student"]:
    e = ev("09_evaluate", run)
    assert f"{run}/checkpoints/step-" in e["checkpoint"] and e["overall"]["prompts"] == teacher["overall"]["prompts"], e
for run in ["08_distill", "08r_rl_student"]:
    tasks = ev("09_evaluate_levels", run)["tasks"]
    assert {int(t.split("/L")[1]) for t in tasks} == {1, 2, 3, 4}, sorted(tasks)

# eval_table.py: one ratio line per student and the comparison, with the numbers of the reports.
table = open("table.md").read()
t = teacher["overall"]["pass@1"]
for run in ["00s_pretrain_student", "08_distill", "08r_rl_student"]:
    s = ev("09_evaluate", run)["overall"]["pass@1"]
    want = f"{s / t:.3f}" if t > 0 else "n/a"
    line = re.search(rf"^student/teacher pass@1 ratio: {run} {s:.3f} / 07_rl_all {t:.3f} = (\S+)", table, re.M)
    assert line and line.group(1) == want, (run, want, table)
assert re.search(r"^distillation vs RL on the student base: 08_distill pass@1 \d\.\d{3} .*08a_distill_data \+ 08_distill "
                 r"\d+:\d\d\) vs 08r_rl_student \d\.\d{3} .*: (distillation ahead|RL ahead|a tie)", table, re.M), table
levels = open("levels.md").read()
assert re.search(r"^\| phase \| overall \| L1 \| L2 \| L3 \| L4 \|$", levels, re.M), levels
assert re.search(r"^\| 08r_rl_student \| ", levels, re.M), levels

# The ratio and the verdict on reports with known numbers (the tiny teacher's pass@1 is near 0).
for run, p in [("07_rl_all", 0.8), ("08_distill", 0.7), ("08r_rl_student", 0.4)]:
    e = ev("09_evaluate", run)
    e["overall"]["pass@1"] = p
    os.makedirs(f"known/09_evaluate/{run}")
    json.dump(e, open(f"known/09_evaluate/{run}/eval.json", "w"))
os.makedirs("known/logs")
shutil.copy(f"{T}/logs/times.tsv", "known/logs/times.tsv")
out = subprocess.run([sys.executable, os.environ["EVAL_TABLE"], "known", "07_rl_all", "08_distill",
                      "08r_rl_student", "--teacher", "07_rl_all", "--student", "08_distill", "--distill", "08_distill",
                      "--distill-data", "08a_distill_data", "--rl", "08r_rl_student"], capture_output=True, text=True, check=True).stdout
assert "student/teacher pass@1 ratio: 08_distill 0.700 / 07_rl_all 0.800 = 0.875 (88%)" in out, out
assert re.search(r"vs 08r_rl_student 0\.400 .*: distillation ahead by 30\.0 points$", out, re.M), out
PY
echo PASS
