# Sourced by the pipeline schedules' e2e tests (schedule_restart_test.sh, weight_split_test.sh,
# dualpipe_restart_test.sh) with their arguments R1HPC_BINARY PRETRAIN_DECK TOOLS_DIR [PYTHON]: sets bin, deck, tools,
# py, loads the e2e helpers and the deck overrides their PP2 legs share.
set -uo pipefail
bin=$1
deck=$2
tools=$3
py=${4:-python3}
# shellcheck source=../e2e/common.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../e2e/common.sh"
# 4 layers cut into 4 chunks of one (dualpipev at PP2); micro-batch 2 of 8 rows: 4 micro-batches = 2 x PP.
# shellcheck disable=SC2034  # used by the sourcing script
common=(--set optim.decay_steps=100 --set model.n_layers=4 --set train.micro_batch=2 --set train.global_batch=8)
