#!/usr/bin/env bash
# The divergence guard of the training step on 2 ranks, forced by the deck: a run resumed at a huge
# learning rate makes its first update blow up the weights. Under train.divergence_policy = stop the run
# exits 4 at that step with the last checkpoint still the newest; under skip every such step goes back to
# the last checkpoint and the run stops (exit 4) after three in a row; a loss spike (the weight check off)
# stops the step after the bad update, before that update could be committed by it.
#   usage: divergence_test.sh R1HPC_BINARY
set -uo pipefail
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/e2e/common.sh
source "$here/common.sh"
run=(mpiexec -n 2 --oversubscribe "$bin" "$here/pretrain_tiny.deck" --set data.synthetic_examples=200
     --set checkpoint.every_steps=10)
"${run[@]}" --set run.output_dir=good --set run.max_steps=10 >good.log 2>&1 || { cat good.log; fail "the good run"; }
huge=(--set checkpoint.load=latest --set run.max_steps=30 --set optim.lr=0.9 --set optim.min_lr=0.9
      --set optim.schedule=constant --set optim.warmup_steps=0 --set train.weight_check_every=1)
newest() { cat "$1/checkpoints/latest"; }
for policy in stop skip spike; do
  cp -r good $policy
  extra=(--set train.divergence_policy=$policy)
  [[ $policy == spike ]] && extra=(--set train.max_weight_norm_growth=0 --set train.loss_spike_factor=1.5)
  "${run[@]}" "${huge[@]}" "${extra[@]}" --set run.output_dir=$policy >$policy.log 2>&1
  code=$?
  [[ $code == 4 ]] || { cat $policy.log; fail "$policy: exit $code, expected 4 (diverged)"; }
  grep -q "r1hpc: diverged: step" $policy.log || { cat $policy.log; fail "$policy: no 'diverged' error line"; }
  [[ $(newest $policy) == step-00000010 ]] || fail "$policy: the newest checkpoint is $(newest $policy), not step 10's"
  [[ ! -d $policy/checkpoints/step-00000020 ]] || fail "$policy: a diverged state was committed"
done
grep -q "step 11: the update grew the weight norm" stop.log || { cat stop.log; fail "stop: not stopped at step 11 by the weight norm"; }
[[ $(grep -c "rank 0.*skipped: back to .*step-00000010 (step 10)" skip.log) == 3 ]] || { cat skip.log; fail "skip: not three steps back to step 10"; }
grep -q "step 14: .*too many diverged steps in a row" skip.log || { cat skip.log; fail "skip: the fourth diverged step did not stop"; }
grep -q "step 12: the loss .* is above train.loss_spike_factor" spike.log || { cat spike.log; fail "spike: no loss spike at step 12"; }
grep -q '"diverged"' stop/metrics.jsonl || fail "stop: metrics.jsonl does not record the diverged step"
echo PASS
