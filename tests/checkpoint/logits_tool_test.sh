#!/usr/bin/env bash
# r1hpc-logits, the r1hpc side of tools/hf_roundtrip.py (which needs torch and runs on the GPU machine, not
# here): the committed transformers checkpoint imported with import_hf gives, for the fixture's own ids, the
# logits transformers computed (float64 reference, within f32 rounding: 1e-5 of the largest logit); a file
# without input_ids is refused by name.
#   usage: logits_tool_test.sh R1HPC R1HPC_LOGITS PYTHON
set -uo pipefail
bin=$1
logits=$2
py=$3
here=$(cd "$(dirname "$0")" && pwd)
fixtures=$here/../fixtures
# shellcheck source=tests/e2e/common.sh
source "$here/../e2e/common.sh"
printf '[run]\nstage = import_hf\noutput_dir = import\n[hf]\npath = %s\n' "$fixtures/hf_safetensors/moe_sigmoid_groups" >import.deck
"$bin" import.deck >import.log 2>&1 || { cat import.log; fail "import_hf of the fixture"; }
"$logits" --cpu import/checkpoints "$fixtures/moe_sigmoid_groups.h5" out.h5 >logits.log 2>&1 ||
  { cat logits.log; fail "r1hpc-logits"; }
"$py" - "$fixtures/moe_sigmoid_groups.h5" out.h5 <<'PY' || fail "the logits differ from the fixture's"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as want, h5py.File(sys.argv[2], "r") as got:
    assert np.array_equal(got["input_ids"][...], want["input_ids"][...])
    g, w = got["logits"][...], want["logits"][...]
    assert g.dtype == np.float32 and g.shape == w.shape, (g.dtype, g.shape, w.shape)
    rel = float(np.abs(g.astype(np.float64) - w).max() / np.abs(w).max())
    assert rel <= 1e-5, rel
    attrs = got.attrs
    assert attrs["stage"] == "import_hf" and int(attrs["step"][0]) == 0 and attrs["device"] == "cpu", dict(attrs)
    assert attrs["precision"] == "fp32", dict(attrs)
print(f"r1hpc-logits gives the fixture's logits: {g.shape[0]} x {g.shape[1]} x {g.shape[2]}, max error {rel:.1e} of the largest")
PY
"$logits" --cpu import/checkpoints import.deck bad.h5 >bad.log 2>&1
code=$?
[[ $code == 2 ]] && grep -q "import.deck: cannot be opened as an HDF5 file" bad.log || { cat bad.log; fail "a non-HDF5 ids file: exit $code"; }
"$logits" --cpu import/checkpoints "$(ls -d import/checkpoints/step-*)/index.h5" bad.h5 >bad.log 2>&1
code=$?
[[ $code == 2 ]] && grep -q "index.h5: no dataset input_ids" bad.log || { cat bad.log; fail "ids file without input_ids: exit $code"; }
echo "files without input_ids are refused"
