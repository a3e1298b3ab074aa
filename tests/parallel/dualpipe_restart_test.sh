#!/usr/bin/env bash
# DualPipe (two copies of the stages, micro-batches fed from both ends) through the pretrain stage (CPU, PP2, a
# 4-layer tiny MoE), restarted across schedules both ways: 3 steps under dualpipe with its timeline, then
# resumed under 1f1b to step 6; and 3 steps under 1f1b, resumed under dualpipe with the W split
# ([parallel] split_weight_grad) to step 6. Both give the losses of one uninterrupted one-rank run (FP32, to
# 1e-5 relative as schedule_restart_test.sh): the checkpoints hold one copy of each stage under their
# layout-independent names. The timelines hold each rank's two stages, micro-batches 0-1 on the way down
# and 2-3 on the way up (with the split, each W after its B), and tools/pipeline_timeline.py measures them.
#   usage: dualpipe_restart_test.sh R1HPC_BINARY PRETRAIN_DECK TOOLS_DIR [PYTHON]
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=pipeline_legs.sh
source "$here/pipeline_legs.sh" "$@"
pp2=(--set parallel.pipeline=2)

"$bin" "$deck" "${common[@]}" --set run.max_steps=6 --set run.output_dir=ref >ref.log 2>&1 || { cat ref.log; fail "one-rank run"; }
mpiexec -n 2 --oversubscribe "$bin" "$deck" "${common[@]}" "${pp2[@]}" --set run.max_steps=3 --set run.output_dir=down \
  --set parallel.schedule=dualpipe --set parallel.timeline=true >down1.log 2>&1 || { cat down1.log; fail "dualpipe leg"; }
mpiexec -n 2 --oversubscribe "$bin" "$deck" "${common[@]}" "${pp2[@]}" --set run.max_steps=6 --set run.output_dir=down \
  --set parallel.schedule=1f1b --set checkpoint.load=latest >down2.log 2>&1 || { cat down2.log; fail "1f1b leg after dualpipe"; }
grep -q "resuming this run from down/checkpoints/step-00000003" down2.log || { cat down2.log; fail "did not resume from step 3"; }
"$py" "$here/losses_match.py" ref down 6 "dualpipe -> 1f1b" || fail "dualpipe -> 1f1b: losses differ from the one-rank run"

mpiexec -n 2 --oversubscribe "$bin" "$deck" "${common[@]}" "${pp2[@]}" --set run.max_steps=3 --set run.output_dir=up \
  --set parallel.schedule=1f1b >up1.log 2>&1 || { cat up1.log; fail "1f1b leg"; }
mpiexec -n 2 --oversubscribe "$bin" "$deck" "${common[@]}" "${pp2[@]}" --set run.max_steps=6 --set run.output_dir=up \
  --set parallel.schedule=dualpipe --set parallel.split_weight_grad=true --set parallel.timeline=true \
  --set checkpoint.load=latest >up2.log 2>&1 ||
  { cat up2.log; fail "dualpipe + W leg after 1f1b"; }
grep -q "resuming this run from up/checkpoints/step-00000003" up2.log || { cat up2.log; fail "did not resume from step 3"; }
"$py" "$here/losses_match.py" ref up 6 "1f1b -> dualpipe + W" || fail "1f1b -> dualpipe + W: losses differ from the one-rank run"

# The timeline of steps 1-3: rank r runs stage r (chunk r) for micro-batches 0-1 and the second copy of stage
# 1 - r (chunk 3 - r) for micro-batches 2-3, each F and B once.
"$py" "$here/timeline_check.py" down dualpipe 3 4 || fail "the timeline files are not what the schedule ran"
"$py" "$here/timeline_check.py" up dualpipe 3 4 --split || fail "the timeline is not the split schedule"
"$py" "$tools/pipeline_timeline.py" down --json >summary.json || fail "pipeline_timeline.py failed"
"$py" - summary.json <<'PY' || fail "pipeline_timeline.py's summary is wrong"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["schedule"] == "dualpipe" and s["stages"] == 2 and s["micro_batches"] == 4 and s["run"] == 2, s
assert s["ideal_bubble"] == 0, s  # (2p - 5)F idle: none at p = 2
assert 0 <= s["bubble_fraction"] < 1 and s["mean_forward_s"] > 0 and s["mean_backward_s"] > 0, s
PY
echo "PASS"
