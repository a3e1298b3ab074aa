#!/usr/bin/env python3
"""Whether a run's recorded pipeline timelines ([parallel] timeline) are what its schedule ran (the pipeline e2e tests).

usage: timeline_check.py RUN_DIR SCHEDULE RUNS MICRO_BATCHES [--split]
Every pipeline rank's RUN_DIR/pipeline_timeline/rank-R.jsonl must hold schedule runs 0 .. RUNS - 1 of SCHEDULE,
each with a bubble in [0, 1) and every pass of its micro-batches on this rank's chunks exactly once: F and B
(and W after its B with --split), on chunks r and 2p - 1 - r for every micro-batch under dualpipev, and under
dualpipe chunk r (the rank's own stage) for the first half of the micro-batches and chunk 2p - 1 - r (the second
copy of stage p - 1 - r) for the second half; DualPipe's overlapped forward/backward pairs (on by default) present and
matched; and the rank must have waited on exchanges with its neighbours."""
import collections
import glob
import json
import os
import sys


def chunks(schedule, p, rank, micro, m):
    if schedule == "dualpipe":
        return {rank if micro < m // 2 else 2 * p - 1 - rank}
    return {rank, 2 * p - 1 - rank}


def check(run_dir, schedule, n_runs, m, split):
    files = sorted(glob.glob(os.path.join(run_dir, "pipeline_timeline", "rank-*.jsonl")))
    assert files, f"no timeline files in {run_dir}"
    kinds = "FBW" if split else "FB"
    for f in files:
        lines = [json.loads(line) for line in open(f)]
        runs = [r for r in lines if r["kind"] == "run"]
        assert [r["run"] for r in runs] == list(range(n_runs)), runs
        for r in runs:
            rank, p = r["pp_rank"], r["stages"]
            assert r["schedule"] == schedule and r["split_weight"] == split and 0 <= r["bubble_fraction"] < 1, r
            steps = [l for l in lines if l["run"] == r["run"] and l["kind"] in kinds]
            passes = collections.Counter((l["kind"], l["micro"], l["chunk"]) for l in steps)
            want = {(k, i, c) for k in kinds for i in range(m) for c in chunks(schedule, p, rank, i, m)}
            assert set(passes) == want and set(passes.values()) == {1}, (f, passes)
            at = {(l["kind"], l["micro"], l["chunk"]): i for i, l in enumerate(steps)}
            assert not split or all(at[("B", i, c)] < at[("W", i, c)] for _, i, c in want), steps
            # Overlapped pairs ([parallel] overlap_chunk_pairs, on by default): a forward and a backward of the
            # rank's other chunk, one line each with the same interval, naming each other; the summary counts them.
            paired = [l for l in steps if "paired_with" in l]
            for l in paired:
                o = l["paired_with"]
                other = steps[at[(o["kind"], o["micro"], o["chunk"])]]
                assert other.get("paired_with") == {"kind": l["kind"], "micro": l["micro"], "chunk": l["chunk"]}, (l, other)
                assert (other["start_s"], other["end_s"]) == (l["start_s"], l["end_s"]) and l["chunk"] != o["chunk"], (l, other)
            assert r["pairs"] == len(paired) // 2 == sum(l["kind"] == "F" for l in paired) > 0, (f, r)
            waits = [l for l in lines if l["run"] == r["run"] and l["kind"] == "wait"]
            assert waits and all(abs(l["peer"] - rank) == 1 and l["end_s"] >= l["start_s"] for l in waits), waits
    print(f"timeline: {n_runs} run(s) of {schedule}{' + W' if split else ''} on {len(files)} ranks, every pass once")


if __name__ == "__main__":
    a = [x for x in sys.argv[1:] if x != "--split"]
    check(a[0], a[1], int(a[2]), int(a[3]), "--split" in sys.argv)
