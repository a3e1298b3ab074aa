#!/usr/bin/env bash
# Pretraining on HDF5 token shards (CPU): a 20,000-token shard written by h5py is 20,000 corpus tokens, the
# same stream split over a directory of two shards trains to the same losses, and a shard with an id
# outside the vocabulary stops the job before any compute (exit 2, the file named, nothing written).
#   usage: token_shards_test.sh R1HPC_BINARY PYTHON_WITH_H5PY
set -uo pipefail
bin=$1
py=$2
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/e2e/common.sh
source "$here/common.sh"
"$py" - <<'PY' || fail "writing the shards"
import os
import h5py, numpy as np
rng = np.random.default_rng(5)
ids = rng.integers(0, 200, size=20000).astype(np.int32)
with h5py.File("all.h5", "w") as f:
    f["tokens"] = ids
os.mkdir("parts")
with h5py.File("parts/00.h5", "w") as f:
    f["tokens"] = ids[:12345].astype(np.uint16)
with h5py.File("parts/01.h5", "w") as f:
    f["tokens"] = ids[12345:].astype(np.int64)
with h5py.File("bad.h5", "w") as f:
    f["tokens"] = np.array([1, 2, 1 << 20], dtype=np.int64)
PY
args=(--set data.source=files --set run.max_steps=6 --set train.log_every=1)
"$bin" "$here/pretrain_tiny.deck" "${args[@]}" --set data.train_path=all.h5 --set run.output_dir=one >one.log 2>&1 \
  || { cat one.log; fail "pretraining on one shard"; }
grep -q "; 20000 corpus tokens;" one.log || { grep corpus one.log; fail "the shard was not read as 20000 tokens"; }
"$bin" "$here/pretrain_tiny.deck" "${args[@]}" --set data.train_path=parts --set run.output_dir=dir >dir.log 2>&1 \
  || { cat dir.log; fail "pretraining on a directory of shards"; }
cmp <(grep -o '"loss":[^,]*' one/metrics.jsonl) <(grep -o '"loss":[^,]*' dir/metrics.jsonl) \
  || fail "one shard and the same tokens over two shards train differently"
"$bin" "$here/pretrain_tiny.deck" "${args[@]}" --set data.train_path=bad.h5 --set run.output_dir=bad >bad.log 2>&1
code=$?
[[ $code == 2 ]] || { cat bad.log; fail "a shard with an id outside the vocabulary exited $code, not 2"; }
grep -q "bad.h5: tokens\[2\] = 1048576 is outside the model's vocabulary" bad.log || { cat bad.log; fail "the error does not name the shard"; }
[[ ! -e bad ]] || fail "a rejected run left an output directory"
echo PASS
