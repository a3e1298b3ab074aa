# Sourced by the end-to-end test scripts: a scratch directory removed on exit (and entered), one OpenMP
# thread per rank (ranks share the cores), and fail() for a clear last line.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
export OMP_NUM_THREADS=1
fail() { echo "FAIL: $*"; exit 1; }
# curated_additions FILE: a curated prompt/response JSONL (what rejection_sampling writes) of 300 worked
# additions, for the distillation runs.
curated_additions() {
  python3 - "$1" <<'PY'
import json, random, sys
rnd = random.Random(5)
with open(sys.argv[1], "w") as f:
    for i in range(300):
        a, b = rnd.randint(2, 60), rnd.randint(2, 60)
        f.write(json.dumps({"prompt": f"What is {a} + {b}?", "response": f"<think>{a} + {b} = {a + b}</think><answer>{a + b}</answer>",
                            "source": "test"}) + "\n")
PY
}
