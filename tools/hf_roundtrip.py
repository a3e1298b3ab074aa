#!/usr/bin/env python3
"""Round trip of an r1hpc checkpoint through Hugging Face transformers: r1hpc's logits against the exported model's.

  hf_roundtrip.py CHECKPOINT [--bin build/bin] [--work DIR] [--dtypes fp32,bf16] [--device auto|cpu|cuda]

CHECKPOINT: a step directory or a checkpoints directory (its `latest`), MoE (DeepSeek-V3/V2 routing) or a dense
student. For each export dtype:
  1. `r1hpc` runs an export_hf deck (hf.dtype = fp32 or bf16) into WORK/hf_<dtype>;
  2. `r1hpc-logits` gives r1hpc's logits of a random id batch (the checkpoint's f32 weights; for bf16 its bf16
     compute copies, i.e. the same rounded weights the bf16 export holds);
  3. transformers' AutoModelForCausalLM loads the export (torch dtype float32 / bfloat16, eager attention, eager
     expert loop) and runs the same ids (no cache, positions 0..S-1, causal mask only).
Then, per dtype: max |hf - r1hpc|, that relative to the largest |r1hpc logit| (the error measure of
tests/model/hf_parity_test.cpp), and the argmax agreement. It fails (exit 1) when the relative error passes the
tolerance (--tol-fp32, --tol-bf16), or when the argmaxes differ at a position where r1hpc's top logit leads
HF's choice by more than twice the tolerance (ties within the tolerance may break either way).

Needs torch, transformers (>= 5: DeepseekV3 with rope_interleave), h5py and numpy, and a built r1hpc
(`r1hpc`, `r1hpc-logits` in --bin). The fp32 comparison is the exactness check: both sides compute in f32 on
the same weights, so the tolerance (1e-4) leaves room for summation order only (measured: 3e-7 to 1.3e-6 on
tiny MoE, V2-softmax and dense models). bf16 compares two bf16 implementations: activations rounded to ~3
significant digits at different points (typically 2e-3 to 5e-3 of the largest logit), and where a token's top-k
expert choice is a near-tie, the two may route it differently, which shows as isolated positions with ~10 times
the typical error (measured up to 4.7e-2 on a barely trained MoE); hence 1e-1.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM

TORCH_DTYPE = {"fp32": torch.float32, "bf16": torch.bfloat16}


def fail(msg):
    print(f"hf_roundtrip: {msg}", file=sys.stderr)
    sys.exit(2)


def run(cmd, log):
    """Runs a command, its output appended to `log`; on failure, shows the log's end and stops."""
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
    if code:
        with open(log) as f:
            sys.stderr.write("".join(f.readlines()[-30:]))
        fail(f"`{' '.join(cmd)}` exited with {code} (log: {log})")


def export(r1hpc, checkpoint, dtype, work, log):
    hf_dir = os.path.join(work, f"hf_{dtype}")
    deck = os.path.join(work, f"export_{dtype}.deck")
    with open(deck, "w") as f:
        f.write(f"# tools/hf_roundtrip.py: {checkpoint} as a Hugging Face model in {dtype}\n"
                f"[run]\nstage = export_hf\noutput_dir = {os.path.join(work, f'export_{dtype}_run')}\n"
                f"[checkpoint]\nload = {checkpoint}\n"
                f"[hf]\npath = {hf_dir}\ndtype = {dtype}\nmax_shard_bytes = 0\noverwrite = true\n")
    run([r1hpc, deck], log)
    return hf_dir


def r1hpc_logits(logits_bin, checkpoint, ids_file, precision, on_cpu, work, log):
    out = os.path.join(work, f"r1hpc_logits_{precision}.h5")
    run([logits_bin] + (["--cpu"] if on_cpu else []) + ["--precision", precision, checkpoint, ids_file, out], log)
    with h5py.File(out, "r") as f:
        return f["logits"][...], {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}


def hf_logits(hf_dir, dtype, ids, device, n_layers):
    model, info = AutoModelForCausalLM.from_pretrained(
        hf_dir, dtype=TORCH_DTYPE[dtype], attn_implementation="eager", experts_implementation="eager",
        output_loading_info=True)
    if info["missing_keys"]:
        fail(f"transformers found no weights in {hf_dir} for {sorted(info['missing_keys'])} (it would use random ones)")
    # transformers' causal LM has no MTP layer (model.layers.<num_hidden_layers>.*): it leaves those tensors out.
    unused = sorted(info["unexpected_keys"])
    if any(not k.startswith(f"model.layers.{n_layers}.") for k in unused):
        fail(f"transformers does not use these tensors of {hf_dir}: {unused}")
    model = model.to(device).eval()
    with torch.no_grad():
        out = model(input_ids=torch.from_numpy(ids).long().to(device), use_cache=False)
    note = f" (the MTP layer's {len(unused)} tensors unused)" if unused else ""
    return out.logits.float().cpu().numpy(), f"{type(model).__name__} in {TORCH_DTYPE[dtype]}{note}"


def compare(name, hf, r1, tol):
    """Prints the errors of `hf` against `r1` ([B, S, V]); True when within the tolerance."""
    scale = float(np.abs(r1).max())
    diff = np.abs(hf.astype(np.float64) - r1.astype(np.float64))
    max_abs = float(diff.max())
    rel = max_abs / scale
    hf_top, r1_top = hf.argmax(-1), r1.argmax(-1)
    differ = hf_top != r1_top
    # How far r1hpc's own logits put HF's choice behind r1hpc's: a near-tie may break either way.
    lead = r1.max(-1) - np.take_along_axis(r1, hf_top[..., None], -1)[..., 0]
    real = differ & (lead > 2 * tol * scale)
    ok = rel <= tol and not real.any()
    typical = float(np.median(diff.max(-1))) / scale
    print(f"  {name}: max |hf - r1hpc| = {max_abs:.3e}, relative to max |logit| = {scale:.4g}: {rel:.3e} "
          f"(tolerance {tol:.0e}; median position {typical:.1e}); argmax agrees at "
          f"{differ.size - int(differ.sum())}/{differ.size} positions ({int(real.sum())} disagreements beyond near-ties) "
          f"-> {'ok' if ok else 'FAIL'}")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", help="r1hpc step directory, or checkpoints directory with `latest`")
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "bin"),
                    help="directory of the r1hpc and r1hpc-logits executables (default: build/bin)")
    ap.add_argument("--work", help="directory for the exports, decks, ids and logits (default: a temporary one)")
    ap.add_argument("--dtypes", default="fp32,bf16", help="export dtypes to check, of fp32,bf16 (default both)")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                    help="where both sides run (auto: cuda when torch sees a GPU)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=64, help="sequence length (capped at the model's max_seq_len)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tol-fp32", type=float, default=1e-4)
    ap.add_argument("--tol-bf16", type=float, default=1e-1)
    args = ap.parse_args()

    dtypes = args.dtypes.split(",")
    if not dtypes or any(d not in TORCH_DTYPE for d in dtypes):
        fail(f"--dtypes {args.dtypes}: a comma-separated list of fp32, bf16")
    r1hpc, logits_bin = (os.path.abspath(os.path.join(args.bin, b)) for b in ("r1hpc", "r1hpc-logits"))
    for b in (r1hpc, logits_bin):
        if not os.access(b, os.X_OK):
            fail(f"{b} is not an executable; build r1hpc (and its r1hpc-logits target) or pass --bin")
    transformers.logging.set_verbosity_error()  # the load report: hf_logits checks it instead
    transformers.logging.disable_progress_bar()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    checkpoint = os.path.abspath(args.checkpoint)
    work = os.path.abspath(args.work) if args.work else tempfile.mkdtemp(prefix="hf_roundtrip_")
    os.makedirs(work, exist_ok=True)
    log = os.path.join(work, "r1hpc.log")
    print(f"hf_roundtrip: {checkpoint}; torch {torch.__version__}, transformers {transformers.__version__}, "
          f"on {device}; work directory {work}")

    ok = True
    ids = None
    for dtype in dtypes:
        hf_dir = export(r1hpc, checkpoint, dtype, work, log)
        with open(os.path.join(hf_dir, "config.json")) as f:
            config = json.load(f)
        if ids is None:
            # Every id of the model's vocabulary may appear: the export's vocabulary is the model's.
            seq = min(args.seq, config["max_position_embeddings"])
            ids = np.random.default_rng(args.seed).integers(0, config["vocab_size"], size=(args.batch, seq), dtype=np.int32)
            ids_file = os.path.join(work, "ids.h5")
            with h5py.File(ids_file, "w") as f:
                f["input_ids"] = ids
        r1, attrs = r1hpc_logits(logits_bin, checkpoint, ids_file, dtype, device == "cpu", work, log)
        hf, cls = hf_logits(hf_dir, dtype, ids, device, config["num_hidden_layers"])
        if hf.shape != r1.shape:
            fail(f"{dtype}: transformers gives logits of shape {hf.shape}, r1hpc {r1.shape}")
        print(f"{dtype}: {attrs['model']} (stage {attrs['stage']}, step {int(attrs['step'][0])}); r1hpc on "
              f"{attrs['device']} in {attrs['precision']}, transformers {cls}; ids {ids.shape[0]} x {ids.shape[1]}")
        ok &= compare(f"{dtype} export vs r1hpc {dtype}", hf, r1, args.tol_fp32 if dtype == "fp32" else args.tol_bf16)
        if dtype == "bf16":
            r1_f32, _ = r1hpc_logits(logits_bin, checkpoint, ids_file, "fp32", device == "cpu", work, log)
            ok &= compare("bf16 export vs r1hpc fp32", hf, r1_f32, args.tol_bf16)
    print("hf_roundtrip: " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
