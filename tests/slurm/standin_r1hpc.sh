#!/usr/bin/env bash
# HARNESS SELF-TEST ONLY: a stand-in for r1hpc that follows its stop/resume contract without training,
# so harness_selftest.sh can check the cluster, r1hpc.sbatch's signal forwarding and requeue logic on
# their own. Each rank: SIGUSR1 -> "checkpoint" (a marker file) and exit 75; started with
# --set checkpoint.load=latest -> "resume" and exit 0; otherwise idles up to 120 s and exits 0.
# Markers go to $STANDIN_DIR/<restart>.<rank>.<event>.
set -euo pipefail
dir=${STANDIN_DIR:?STANDIN_DIR: where the markers go}
rank=${SLURM_PROCID:-0}
tag=$dir/${SLURM_RESTART_COUNT:-0}.$rank
echo "$*" > "$tag.args"
if [[ " $* " == *" checkpoint.load=latest "* ]]; then
  echo "standin rank $rank: resumed from latest"
  touch "$tag.resumed"
  exit 0
fi
trap 'echo "standin rank $rank: SIGUSR1, checkpoint, exit 75"; touch "$tag.usr1"; exit 75' USR1
touch "$tag.started"
# srun signals every process of the step, sleep too: its death must not end the script before the trap.
for _ in $(seq 600); do sleep 0.2 || true; done
exit 0
