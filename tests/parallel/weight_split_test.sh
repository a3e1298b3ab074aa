#!/usr/bin/env bash
# DualPipeV with the weight gradient split off ([parallel] split_weight_grad) through the pretrain stage (CPU,
# PP2, a 4-layer tiny MoE): 2 steps under dualpipev + W with its timeline, checkpointed, then resumed under
# 1f1b to step 4, give the losses of one uninterrupted one-rank run (FP32, to 1e-5 relative as
# schedule_restart_test.sh); the timeline holds every F, B and W of each step once, each W after its B on
# its rank, and tools/pipeline_timeline.py reports the split schedule's formula, (p - 1) / (p - 1 + 6m).
#   usage: weight_split_test.sh R1HPC_BINARY PRETRAIN_DECK TOOLS_DIR [PYTHON]
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=pipeline_legs.sh
source "$here/pipeline_legs.sh" "$@"

"$bin" "$deck" "${common[@]}" --set run.max_steps=4 --set run.output_dir=ref >ref.log 2>&1 || { cat ref.log; fail "one-rank run"; }
mpiexec -n 2 --oversubscribe "$bin" "$deck" "${common[@]}" --set run.max_steps=2 --set run.output_dir=run \
  --set parallel.pipeline=2 --set parallel.schedule=dualpipev --set parallel.split_weight_grad=true \
  --set parallel.timeline=true >leg1.log 2>&1 || { cat leg1.log; fail "dualpipev + W leg"; }
mpiexec -n 2 --oversubscribe "$bin" "$deck" "${common[@]}" --set run.max_steps=4 --set run.output_dir=run \
  --set parallel.pipeline=2 --set parallel.schedule=1f1b --set checkpoint.load=latest >leg2.log 2>&1 ||
  { cat leg2.log; fail "1f1b leg"; }
grep -q "resuming this run from run/checkpoints/step-00000002" leg2.log || { cat leg2.log; fail "did not resume from step 2"; }
"$py" "$here/losses_match.py" ref run 4 "dualpipev + W -> 1f1b" || fail "losses differ from the one-rank run"

"$py" "$here/timeline_check.py" run dualpipev 2 4 --split || fail "the timeline is not the split schedule"
"$py" "$tools/pipeline_timeline.py" run --json >summary.json || fail "pipeline_timeline.py failed"
"$py" - summary.json <<'PY' || fail "pipeline_timeline.py's summary is wrong"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["schedule"] == "dualpipev" and s["split_weight"] and s["stages"] == 2 and s["micro_batches"] == 4, s
assert abs(s["ideal_bubble"] - 1 / (1 + 24)) < 1e-12, s  # (p - 1) / (p - 1 + 6m)
assert 0 <= s["bubble_fraction"] < 1 and s["mean_weight_s"] > 0 and 0 < s["formula_with_measured_times"] < 1, s
PY
echo "PASS"
