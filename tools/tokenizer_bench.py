#!/usr/bin/env python3
"""Encode throughput of Hugging Face `tokenizers` (PyPI) on one core, over the same texts and in the same way
as r1hpc-bench-tokenizer: each family fixture's corpus texts encoded one at a time ("texts"), and joined by
newlines into documents of about 1 MiB ("documents"), repeated to MIB MiB.
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
    print(f"{'family':22s} {'MiB':>8s} {'texts MB/s':>16s} {'documents MB/s':>16s}")
    for name in sorted(os.listdir(families)):
        tok = Tokenizer.from_file(os.path.join(families, name, "tokenizer.json"))
        with open(os.path.join(families, name, "cases.json"), encoding="utf-8") as f:
            texts = [c["text"] for c in json.load(f)["cases"] if "text" in c]
        document = ""
        while len(document.encode("utf-8")) < 2**20:
            document += "".join(t + "\n" for t in texts)
        total = mib * 2**20
        print(f"{name:22s} {mib:8.1f} {mb_per_s(tok, texts, total):16.2f} {mb_per_s(tok, [document], total):16.2f}")


def mb_per_s(tok, texts, total):
    sizes = [len(t.encode("utf-8")) for t in texts]
    done = 0
    t0 = time.perf_counter()
    while done < total:
        for t, n in zip(texts, sizes):
            tok.encode(t, add_special_tokens=False)
            done += n
    return done / 1e6 / (time.perf_counter() - t0)

if __name__ == "__main__":
    main()
