#!/usr/bin/env python3
"""Encode throughput of Hugging Face `tokenizers` (PyPI) on one core, over the same texts and in the same way
as r1hpc-bench-tokenizer (each family fixture's corpus texts, encoded one text at a time, repeated to MIB MiB).
usage: tokenizer_bench.py [FIXTURES_DIR] [MIB]   (default: tests/tokenizer/fixtures, 8 MiB per family)"""
import json
import os
import sys
import time

os.environ["RAYON_NUM_THREADS"] = "1"  # before tokenizers starts its thread pool: one core, as the C++ bench
from tokenizers import Tokenizer  # noqa: E402


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "tokenizer", "fixtures")
    mib = float(sys.argv[2]) if len(sys.argv) > 2 else 8.0
    families = os.path.join(root, "families")
    print(f"{'family':22s} {'MiB':>10s} {'seconds':>10s} {'MB/s/core':>12s}")
    for name in sorted(os.listdir(families)):
        tok = Tokenizer.from_file(os.path.join(families, name, "tokenizer.json"))
        with open(os.path.join(families, name, "cases.json"), encoding="utf-8") as f:
            texts = [c["text"] for c in json.load(f)["cases"] if "text" in c]
        sizes = [len(t.encode("utf-8")) for t in texts]
        total, ids = 0, 0
        t0 = time.perf_counter()
        while total < mib * 1024 * 1024:
            for t, n in zip(texts, sizes):
                ids += len(tok.encode(t, add_special_tokens=False).ids)
                total += n
        s = time.perf_counter() - t0
        print(f"{name:22s} {total / 2**20:10.1f} {s:10.3f} {total / 1e6 / s:12.2f}   ({ids} ids)")


if __name__ == "__main__":
    main()
