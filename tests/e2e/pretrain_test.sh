#!/usr/bin/env bash
# End-to-end pretrain on the tiny MoE (CPU): the loss falls by a clear margin; the auxiliary-loss-free
# bias evens the expert load (against the same run with gamma = 0); two data-parallel ranks reproduce
# the one-rank losses.   usage: pretrain_test.sh R1HPC_BINARY
set -euo pipefail
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/e2e/common.sh
source "$here/common.sh"
"$bin" "$here/pretrain_tiny.deck" --set run.output_dir=balanced
"$bin" "$here/pretrain_tiny.deck" --set run.output_dir=unbalanced --set model.bias_update_gamma=0 >/dev/null
mpiexec -n 2 --oversubscribe "$bin" "$here/pretrain_tiny.deck" --set run.output_dir=dp2 >/dev/null
python3 "$here/pretrain_check.py" balanced unbalanced
python3 - <<'PY'
import json
one = [json.loads(l)["loss"] for l in open("balanced/metrics.jsonl")]
two = [json.loads(l)["loss"] for l in open("dp2/metrics.jsonl")]
assert len(one) == len(two) == 150, (len(one), len(two))
worst = max(abs(a - b) / abs(a) for a, b in zip(one, two))
print(f"data parallel 2 vs 1 rank: largest relative loss difference {worst:.2e} over {len(one)} steps")
assert worst < 1e-4, "data-parallel losses differ from one rank"
PY
