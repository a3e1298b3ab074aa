#!/usr/bin/env bash
# Outside tools read a checkpoint: h5dump and h5py read global tensors by name through index.h5 (from
# another working directory), and tools/ckpt.py lists, follows the lineage and diffs.
#   usage: tools_test.sh MPIEXEC FIXTURE PYTHON
set -euo pipefail
mpiexec=$1
fixture=$2
python=$3
here=$(cd "$(dirname "$0")" && pwd)
ckpt_py=$here/../../tools/ckpt.py
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$mpiexec" -n 2 --oversubscribe "$fixture" save "$work/a" 5 >/dev/null
"$mpiexec" -n 2 --oversubscribe "$fixture" save "$work/b" 6 --parent "$work/a/step-00000005" >/dev/null
cd /

# h5dump: rows 0 and 7 come from the shards of ranks 0 and 1.
h5dump -d /model/layers.0.w "$work/a/step-00000005/index.h5" >"$work/dump.txt"
grep -q "(0,0): 5000, 5001, 5002, 5003, 5004, 5005," "$work/dump.txt" || { cat "$work/dump.txt"; exit 1; }
grep -q "(7,0): 5070, 5071, 5072, 5073, 5074, 5075" "$work/dump.txt" || { cat "$work/dump.txt"; exit 1; }
echo "h5dump reads /model/layers.0.w"

"$python" - "$work/a/step-00000005/index.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    w = f["model/layers.0.w"][()]
    want = 5000 + 10 * np.arange(8)[:, None] + np.arange(6)[None, :]
    assert w.dtype == np.float32 and np.array_equal(w, want), w
    assert np.array_equal(f["optim/exp_avg/layers.0.w"][()], -want)
    assert np.array_equal(f["model/norm"][()], 5 + 0.5 * np.arange(6))
    assert int(f["meta"].attrs["step"][0]) == 5 and f["meta"].attrs["stage"] == "test"
print("h5py reads the global tensors and the metadata")
PY

"$python" "$ckpt_py" list "$work/a" >"$work/list.txt"
grep -Eq "^  model/layers.0.w +\[8, 6\] +f32 +192 B" "$work/list.txt" || { cat "$work/list.txt"; exit 1; }
grep -Eq "^  step +5$" "$work/list.txt" && grep -q "^3 tensors" "$work/list.txt" || { cat "$work/list.txt"; exit 1; }
"$python" "$ckpt_py" lineage "$work/b/step-00000006" >"$work/lineage.txt"
[[ $(wc -l <"$work/lineage.txt") == 2 ]] && grep -q "^  $work/a/step-00000005  stage test  step 5" "$work/lineage.txt" ||
  { cat "$work/lineage.txt"; exit 1; }
"$python" "$ckpt_py" diff "$work/a" "$work/a/step-00000005" | grep -q "checkpoints are identical"
if "$python" "$ckpt_py" diff "$work/a" "$work/b" >"$work/diff.txt"; then echo "FAIL: diff of different checkpoints exited 0"; exit 1; fi
grep -q "model/layers.0.w: max abs diff 1000  DIFFERENT" "$work/diff.txt" || { cat "$work/diff.txt"; exit 1; }
rm "$work/b/step-00000006/shard-00001.h5"
if "$python" "$ckpt_py" diff "$work/a" "$work/b" 2>"$work/missing.txt"; then exit 1; fi
grep -q "its shard .*shard-00001.h5 is missing" "$work/missing.txt" || { cat "$work/missing.txt"; exit 1; }
echo "ckpt.py lists, follows the lineage, diffs and refuses a missing shard"
