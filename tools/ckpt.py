#!/usr/bin/env python3
"""Inspect r1hpc checkpoints (docs/checkpoint.md) with h5py.

  ckpt.py list DIR|STEP_DIR [--deck]   metadata, then every global tensor: shape, dtype, size
  ckpt.py lineage DIR|STEP_DIR         the checkpoint, its parent, the parent's parent, ... (meta/parent), and
                                       the checkpoints its data was sampled from and its reward models
  ckpt.py diff A B                     per-tensor max |a - b|, missing and extra tensors; exit 1 when they differ

DIR is a checkpoint directory holding `latest` (its newest complete step is used) or a step-N directory.
Every command checks the meta texts against their CRC-32s (meta/checksums) and refuses a damaged index.h5.
"""
import argparse
import json
import os
import sys
import zlib

try:
    import h5py
    import numpy as np
except ImportError as e:  # the Debian packages python3-h5py python3-numpy (scripts/setup.sh) provide both
    sys.exit(f"ckpt.py: needs h5py and numpy ({e}); install python3-h5py python3-numpy or pip install h5py numpy")


def fail(msg):
    print(f"ckpt.py: {msg}", file=sys.stderr)
    sys.exit(2)


def resolve(path):
    """The step directory `path` names: itself, or the one its `latest` file names."""
    if os.path.isfile(os.path.join(path, "index.h5")):
        return path
    marker = os.path.join(path, "latest")
    if os.path.isfile(marker):
        step = os.path.join(path, open(marker).read().strip())
        if not os.path.isfile(os.path.join(step, "index.h5")):
            fail(f"{marker} names {step}, which is not a complete checkpoint")
        return step
    fail(f"{path} is neither a step directory (no index.h5) nor a checkpoint directory (no latest)")


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def check_meta(index, meta):
    """Compares the meta texts with meta/checksums (CRC-32, as r1hpc writes them; absent in checkpoints
    written before checksums existed): a mismatch means the file is damaged."""
    sums = meta.pop("checksums", None)
    if sums is None:
        return
    sums = json.loads(sums)
    for k, v in meta.items():
        raw = v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
        got = "crc32:%08x" % zlib.crc32(raw.encode())
        if sums.get(k) != got:
            fail(f"{index}: meta field '{k}' does not match its checksum (stored {sums.get(k)}, computed {got}): the file is damaged")


def read_meta(step):
    index = os.path.join(step, "index.h5")
    with h5py.File(index, "r") as f:
        a = f["meta"].attrs
        meta = {k: text(a[k]) if isinstance(a[k], (str, bytes)) else
                ([] if isinstance(a[k], h5py.Empty) else a[k].tolist()) for k in a.keys()}
    check_meta(index, meta)
    for k in ("format_version", "step", "tokens"):
        meta[k] = int(meta[k][0])
    for k in ("layout", "rng_state", "data_state", "optimizer_state"):
        meta[k] = json.loads(meta[k])
    return meta


def tensors(f):
    """name -> dataset for every global tensor of an open index.h5."""
    out = {}
    f.visititems(lambda name, obj: out.__setitem__(name, obj) if isinstance(obj, h5py.Dataset) else None)
    return out


def values(step, ds):
    """A global tensor as float64 (bf16 bit patterns widened); a missing shard is an error, not zeros."""
    for src in ds.virtual_sources():
        shard = os.path.join(step, src.file_name)
        if not os.path.isfile(shard):
            fail(f"tensor {ds.name[1:]}: its shard {shard} is missing")
    a = ds[()]
    dtype = text(ds.attrs.get("dtype", ""))
    if dtype == "bf16":
        a = (a.astype(np.uint32) << 16).view(np.float32)
    return a.astype(np.float64)


def cmd_list(args):
    step = resolve(args.path)
    meta = read_meta(step)
    print(f"checkpoint {os.path.abspath(step)}")
    for k in ("format_version", "stage", "step", "tokens", "parent", "layout", "writers", "rng_state", "data_state",
              "optimizer_state"):
        v = meta.get(k)
        print(f"  {k:16s} {json.dumps(v) if isinstance(v, (dict, list)) else v}")
    if args.deck:
        print("  deck:\n    " + meta["deck"].replace("\n", "\n    "))
    with h5py.File(os.path.join(step, "index.h5"), "r") as f:
        total = 0
        rows = []
        for name, ds in sorted(tensors(f).items()):
            size = ds.size * ds.dtype.itemsize
            total += size
            rows.append((name, str(list(ds.shape)), text(ds.attrs.get("dtype", ds.dtype)), size))
        width = max([len(r[0]) for r in rows] + [6])
        print(f"{len(rows)} tensors, {total / 2**20:.2f} MiB")
        for name, shape, dtype, size in rows:
            print(f"  {name:{width}s} {shape:16s} {dtype:6s} {size:>12d} B")


def cmd_lineage(args):
    """The parent chain (meta/parent), one line per checkpoint, deeper ancestors indented; where a run also
    read other checkpoints' products, they follow it, indented, with their own lineage: the checkpoints its
    SFT data was sampled from (data_state/data_from) and its reward models (data_state/reward_models)."""
    seen = set()

    def show(step, depth, label=""):
        pad = "  " * depth
        if not os.path.isfile(os.path.join(step, "index.h5")):
            print(f"{pad}{label}{step}  (not found)")
            return
        step = os.path.abspath(step)
        meta = read_meta(step)
        print(f"{pad}{label}{step}  stage {meta['stage'] or '-'}  step {meta['step']}  tokens {meta['tokens']}")
        if step in seen:
            if meta["parent"]:
                print(f"{pad}  (lineage shown above)")
            return
        seen.add(step)
        data = meta.get("data_state") or {}
        src = data.get("data_from") if isinstance(data, dict) else None
        if src:
            for c in src.get("checkpoints", []):
                show(c, depth + 1, f"data {src.get('path', '?')} sampled from ")
        for c in (data.get("reward_models") or []) if isinstance(data, dict) else []:
            show(c, depth + 1, "reward model ")
        if meta["parent"]:
            show(meta["parent"], depth + 1)

    show(resolve(args.path), 0)


def cmd_diff(args):
    a_step, b_step = resolve(args.a), resolve(args.b)
    different = False
    with h5py.File(os.path.join(a_step, "index.h5"), "r") as fa, h5py.File(os.path.join(b_step, "index.h5"), "r") as fb:
        ta, tb = tensors(fa), tensors(fb)
        for name in sorted(set(ta) | set(tb)):
            if name not in tb:
                print(f"only in A: {name}")
                different = True
            elif name not in ta:
                print(f"only in B: {name}")
                different = True
            elif ta[name].shape != tb[name].shape:
                print(f"{name}: shape {list(ta[name].shape)} vs {list(tb[name].shape)}")
                different = True
            else:
                a, b = values(a_step, ta[name]), values(b_step, tb[name])
                diff = float(np.max(np.abs(a - b))) if a.size else 0.0
                same = np.array_equal(a, b, equal_nan=True)
                different |= not same
                print(f"{name}: max abs diff {diff:.6g}{'' if same else '  DIFFERENT'}")
    print("checkpoints differ" if different else "checkpoints are identical")
    return 1 if different else 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    ls = sub.add_parser("list", help="metadata and tensors of a checkpoint")
    ls.add_argument("path")
    ls.add_argument("--deck", action="store_true", help="also print the resolved deck it was written with")
    ln = sub.add_parser("lineage", help="follow the parent checkpoints back")
    ln.add_argument("path")
    df = sub.add_parser("diff", help="compare two checkpoints tensor by tensor")
    df.add_argument("a")
    df.add_argument("b")
    args = p.parse_args()
    return {"list": cmd_list, "lineage": cmd_lineage, "diff": cmd_diff}[args.cmd](args) or 0


if __name__ == "__main__":
    sys.exit(main())
