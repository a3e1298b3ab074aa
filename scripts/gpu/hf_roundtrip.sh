#!/usr/bin/env bash
# The Hugging Face round trip on the GPU machine (issue 6), after scripts/gpu/run.sh has built BUILD:
# import_hf of the fixtures gives their logits (ctest); export_hf of a tiny MoE (YaRN, query latent, MTP, route
# scale) and of a dense student with tied embeddings, each pretrained a few steps here, loads in transformers and
# gives r1hpc's logits (tools/hf_roundtrip.py: fp32 within 1e-4, bf16 within 1e-1 of the largest logit). Needs
# python3 with torch, transformers, h5py and numpy. Full log: OUTDIR/hf-roundtrip.log; prints the comparisons.
#   scripts/gpu/hf_roundtrip.sh BUILD OUTDIR
set -uo pipefail
cd "$(dirname "$0")/../.."
build=${1:?usage: scripts/gpu/hf_roundtrip.sh BUILD OUTDIR}
out=${2:?usage: scripts/gpu/hf_roundtrip.sh BUILD OUTDIR}
rt=runs/hf_roundtrip
rm -rf "$rt"
mkdir -p "$out"
pretrain() {  # NAME --set ...: a tiny model pretrained 30 steps into $rt/NAME
  local name=$1
  shift
  "$build/bin/r1hpc" tests/e2e/pretrain_tiny.deck --set run.output_dir=$rt/$name --set run.max_steps=30 \
    --set checkpoint.every_steps=30 "$@"
}
{
  ctest --test-dir "$build" -R 'hf_(import|parity|fixture)' --output-on-failure &&
    pretrain moe --set model.original_seq_len=32 --set model.q_lora_rank=24 --set model.mtp_depth=1 \
      --set model.route_scale=2.5 &&
    pretrain dense --set model.dense=true --set model.dim=96 --set model.dense_inter_dim=192 \
      --set model.vocab_size=264 --set model.tie_embeddings=true &&
    python3 tools/hf_roundtrip.py $rt/moe/checkpoints --bin "$build/bin" --work $rt/moe_hf &&
    python3 tools/hf_roundtrip.py $rt/dense/checkpoints --bin "$build/bin" --work $rt/dense_hf
} >"$out/hf-roundtrip.log" 2>&1
status=$?
grep -E '^(hf_roundtrip|fp32|bf16|  [a-z0-9]+ export)|tests passed|FAIL' "$out/hf-roundtrip.log"
((status)) && echo "gpu/hf_roundtrip: failed (log: $out/hf-roundtrip.log)"
exit $status
