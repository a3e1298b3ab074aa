#!/usr/bin/env bash
# Pipeline schedules through the pretrain stage (CPU, PP2, a 4-layer tiny MoE): 3 steps under 1f1b,
# checkpointed, then resumed with `load = latest` under dualpipev (the V places the layers on other ranks)
# to step 6, give the losses of one uninterrupted one-rank run (FP32, to 1e-5 relative as
# layout_restart_test.sh); the dualpipev leg records its timeline ([parallel] timeline), one line per
# program step and a summary per step on each rank, which tools/pipeline_timeline.py measures and draws.
#   usage: schedule_restart_test.sh R1HPC_BINARY PRETRAIN_DECK TOOLS_DIR [PYTHON_WITH_MATPLOTLIB]
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=pipeline_legs.sh
source "$here/pipeline_legs.sh" "$@"

"$bin" "$deck" "${common[@]}" --set run.max_steps=6 --set run.output_dir=ref >ref.log 2>&1 || { cat ref.log; fail "one-rank run"; }
mpiexec -n 2 --oversubscribe "$bin" "$deck" "${common[@]}" --set run.max_steps=3 --set run.output_dir=run \
  --set parallel.pipeline=2 --set parallel.schedule=1f1b >leg1.log 2>&1 || { cat leg1.log; fail "1f1b leg"; }
mpiexec -n 2 --oversubscribe "$bin" "$deck" "${common[@]}" --set run.max_steps=6 --set run.output_dir=run \
  --set parallel.pipeline=2 --set parallel.schedule=dualpipev --set parallel.timeline=true \
  --set checkpoint.load=latest >leg2.log 2>&1 || { cat leg2.log; fail "dualpipev leg"; }
grep -q "resuming this run from run/checkpoints/step-00000003" leg2.log || fail "did not resume from step 3"
grep -q "2 pipeline stages (dualpipev, 4 chunks)" leg2.log || { cat leg2.log; fail "the dualpipev leg does not say it runs 4 chunks"; }
"$py" "$here/losses_match.py" ref run 6 "1f1b -> dualpipev" || fail "losses differ from the one-rank run"

# The timeline: steps 4-6 on both ranks, every pass of each step once (2 chunks x 4 micro-batches x F, B).
"$py" "$here/timeline_check.py" run dualpipev 3 4 || fail "the timeline files are not what the schedule ran"
"$py" "$tools/pipeline_timeline.py" run --json >summary.json || fail "pipeline_timeline.py failed"
"$py" - summary.json <<'PY' || fail "pipeline_timeline.py's summary is wrong"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["schedule"] == "dualpipev" and s["stages"] == 2 and s["micro_batches"] == 4 and s["run"] == 2, s
assert sorted(s["ranks"]) == ["0", "1"], s  # both ranks' latest job, whatever second each opened its file
assert abs(s["ideal_bubble"] - 3 / (3 + 24)) < 1e-12, s  # (4p - 5) / (4p - 5 + 6m)
assert 0 <= s["bubble_fraction"] < 1 and s["mean_forward_s"] > 0 and s["mean_backward_s"] > 0, s
PY
if "$py" -c "import matplotlib" 2>/dev/null; then
  "$py" "$tools/pipeline_timeline.py" run --out timeline.png >/dev/null || fail "pipeline_timeline.py drew nothing"
  [[ "$(head -c 4 timeline.png | tail -c 3)" == PNG ]] || fail "timeline.png is not a PNG"
else
  fail "python3-matplotlib is missing (scripts/setup.sh installs it)"
fi
echo "PASS"
