#!/usr/bin/env bash
# The whole tiny R1 chain end to end (CPU): scripts/run_chain.sh runs every phase deck of inputs/pipeline/
# back to back, then each phase's own effect is checked from its metrics.jsonl and reports: pretraining and
# every SFT lower their loss, R1-Zero learns the rewarded format, rejection sampling keeps only verified
# samples, the language-consistency reward raises language consistency, the reward models rank held-out
# pairs above chance, RL for all scenarios scores general prompts with the learned rewards in its last
# steps only, every checkpoint is evaluated; and the final model's lineage lists every phase.
# With KEEP_DIR, a passing run leaves there what student_test.sh starts from: the teacher's curated samples
# (08a), its evaluation (09_evaluate/07_rl_all) and the phase times.
#   usage: chain_test.sh R1HPC_BINARY PYTHON [KEEP_DIR]   (2 ranks per phase)
set -uo pipefail
bin=$1
py=$2
keep=${3:-}
ranks=2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=tests/e2e/common.sh
source "$here/common.sh"
"$root/scripts/run_chain.sh" --ranks "$ranks" --dir "$work" --bin "$bin" --python "$py" | tee chain.log
[[ ${PIPESTATUS[0]} == 0 ]] || fail "the chain did not run through"
grep -q "^Evaluation on the held-out split" chain.log || fail "no evaluation table"
"$py" - <<'PY' || fail "phase effects"
import json, re
from fractions import Fraction

T = "runs/tiny"
def recs(run):
    return [json.loads(l) for l in open(f"{T}/{run}/metrics.jsonl")]
mean = lambda xs: sum(xs) / len(xs)
def falls(run, key="loss", head=5, tail=5, factor=0.8):
    r = recs(run)
    first, last = mean([x[key] for x in r[:head]]), mean([x[key] for x in r[-tail:]])
    print(f"{run:28s} {key} first {head} steps {first:.3f} -> last {tail} steps {last:.3f}")
    assert last < factor * first, f"{run}: the {key} did not fall"
def ev(run):
    return json.load(open(f"{T}/09_evaluate/{run}/eval.json"))["overall"]

# 00: pretraining lowers the next-token loss.
falls("00_pretrain", factor=0.6)

# 01: R1-Zero learns the format it is rewarded for (held-out, evaluate's protocol).
base, zero = ev("00_pretrain"), ev("01_r1zero")
print(f"{'01_r1zero':28s} held-out format rate {base['format_rate']:.3f} (base) -> {zero['format_rate']:.3f}")
assert zero["format_rate"] > base["format_rate"], "R1-Zero did not raise the format rate"

# 02a, 04, 08a: rejection sampling keeps only verified, well-formed samples, plus the non-reasoning share.
def value(text):
    # A number, or an arithmetic expression of numbers (the verifier follows math-verify, which compares
    # "17 - 5" with 12 by value), computed exactly.
    text = text.strip().strip("$").rstrip(".").replace(",", "")
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        pass
    if not re.fullmatch(r"[0-9+\-*/(). ]+", text):
        return None
    import ast
    def calc(n):
        if isinstance(n, ast.Expression):
            return calc(n.body)
        if isinstance(n, ast.Constant) and isinstance(n.value, (int, float)):
            return Fraction(str(n.value))
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
            return -calc(n.operand)
        if isinstance(n, ast.BinOp) and type(n.op) in (ast.Add, ast.Sub, ast.Mult, ast.Div):
            a, b = calc(n.left), calc(n.right)
            return a / b if isinstance(n.op, ast.Div) else {ast.Add: a + b, ast.Sub: a - b, ast.Mult: a * b}[type(n.op)]
        raise ValueError(text)
    try:
        return calc(ast.parse(text, mode="eval"))
    except (ValueError, SyntaxError, ZeroDivisionError):
        return None
for run in ["02a_cold_start_data", "04_rejection_sampling", "08a_distill_data"]:
    s = json.load(open(f"{T}/{run}/rejection.json"))
    rows = [json.loads(l) for l in open(f"{T}/{run}/sft.jsonl")]
    reasoning = [r for r in rows if r["provenance"]["source"].startswith("synthetic/")]
    assert len(rows) == s["rows"] and len(reasoning) == s["reasoning_rows"] > 0, (run, s)
    for r in reasoning:
        m = re.fullmatch(r"\s*<think>(.*)</think>\s*<answer>(.*)</answer>\s*", r["response"], re.S)
        assert m, (run, r["response"])
        got, want, kind = m.group(2), r["provenance"]["answer"], r["provenance"]["source"]
        if kind == "synthetic/countdown":
            expr = got.split("=")[0]
            assert re.fullmatch(r"[0-9+\-*/() ]+", expr) and eval(expr) == eval(want), (run, got, want)
        elif value(want) is not None:
            assert value(got) == value(want), (run, got, want)
        else:
            assert got.replace(" ", "").lower() == want.replace(" ", "").lower(), (run, got, want)
    print(f"{run:28s} kept {s['reasoning_rows']} verified of {s['samples']} samples "
          f"(+{s['non_reasoning_rows']} non-reasoning rows); incorrect rate {s['rates']['incorrect']:.3f}")

# 02, 05, 08: supervised fine-tuning lowers the response-token loss.
falls("02_cold_start", factor=0.9)
falls("05_sft", factor=0.9)
falls("08_distill", factor=0.6)

# 03: the language-consistency reward: the training signal, and held-out consistency vs R1-Zero.
rl = recs("03_reasoning_rl")
lc_first, lc_last = mean([x["language_consistency"] for x in rl[:4]]), mean([x["language_consistency"] for x in rl[-4:]])
print(f"{'03_reasoning_rl':28s} language consistency first 4 steps {lc_first:.3f} -> last 4 steps {lc_last:.3f}; "
      f"held-out {zero['language_consistency']:.3f} (R1-Zero) -> {ev('03_reasoning_rl')['language_consistency']:.3f}")
assert ev("03_reasoning_rl")["language_consistency"] > zero["language_consistency"], "language consistency did not rise"

# 06, 06b: the reward models rank / classify held-out data above chance.
for run in ["06_reward_model", "06b_safety_reward_model"]:
    acc = [x["heldout_accuracy"] for x in recs(run) if "heldout_accuracy" in x]
    print(f"{run:28s} held-out accuracy {acc[0]:.3f} -> {acc[-1]:.3f}")
    assert acc[-1] > 0.6, f"{run}: held-out accuracy {acc[-1]} is not above chance (0.5)"

# 07: RL for all scenarios: general prompts and learned rewards only in the last preference_steps steps.
r7 = recs("07_rl_all")
pref = [x for x in r7 if x["preference_step"]]
assert len(r7) == 12 and [x["step"] for x in pref] == list(range(7, 13)), [x["step"] for x in pref]
assert all("general_reward_mean" not in x for x in r7 if not x["preference_step"])
assert all(x["general_prompts"] == 4 and "helpfulness_mean" in x and "harmlessness_mean" in x for x in pref)
# A general completion's reward is helpfulness_weight x RM_help + harmlessness_weight x RM_harm (weights 1), and
# the step's mean reward mixes 4 reasoning and 4 general prompts (x 4 samples) of a preference step.
for x in pref:
    assert abs(x["general_reward_mean"] - x["helpfulness_mean"] - x["harmlessness_mean"]) < 1e-9, x
    assert abs(x["reward_mean"] - (x["reasoning_reward_mean"] + x["general_reward_mean"]) / 2) < 1e-9, x
assert all(abs(x["reward_mean"] - x["reasoning_reward_mean"]) < 1e-12 for x in r7 if not x["preference_step"])
print(f"{'07_rl_all':28s} mean reward {mean([x['reward_mean'] for x in r7]):.3f}; reasoning reward "
      f"{mean([x['reasoning_reward_mean'] for x in r7]):.3f}; general (learned) reward "
      f"{mean([x['general_reward_mean'] for x in pref]):.3f} (helpfulness {pref[0]['helpfulness_mean']:.3f} -> "
      f"{pref[-1]['helpfulness_mean']:.3f}, harmlessness {pref[0]['harmlessness_mean']:.3f} -> {pref[-1]['harmlessness_mean']:.3f})")

# 09: every checkpoint evaluated with R1's protocol.
for run in ["00_pretrain", "01_r1zero", "02_cold_start", "03_reasoning_rl", "05_sft", "07_rl_all", "08_distill"]:
    e = json.load(open(f"{T}/09_evaluate/{run}/eval.json"))
    assert e["sampling"]["temperature"] == 0.6 and e["sampling"]["top_p"] == 0.95 and e["overall"]["prompts"] == 16, (run, e)
    assert f"{run}/checkpoints/step-" in e["checkpoint"], (run, e["checkpoint"])
PY
# The final checkpoint's lineage (the student's: the data it was sampled from, that model's parents, data
# and reward models) names every phase.
sed -n '/^Lineage of the final checkpoint/,/^$/p' chain.log >lineage.txt
grep -q "08_distill/checkpoints/step-.*stage sft" lineage.txt || { cat lineage.txt; fail "the lineage does not start at the student"; }
for phase in 00_pretrain 01_r1zero 02a_cold_start_data 02_cold_start 03_reasoning_rl 04_rejection_sampling 05_sft \
  06_reward_model 06b_safety_reward_model 07_rl_all 08a_distill_data; do
  grep -q "runs/tiny/$phase/" lineage.txt || { cat lineage.txt; fail "the final lineage does not list $phase"; }
done
grep -q "reward model .*runs/tiny/06_reward_model/checkpoints/step-.*stage reward_model" lineage.txt \
  || { cat lineage.txt; fail "the lineage does not name the helpfulness reward model"; }
# A reward model of the wrong kind, or a checkpoint of another stage, stops RL-all naming the key.
"$bin" "$root/inputs/pipeline/07_rl_all_tiny.deck" --set run.output_dir=wrong_kind \
  --set reward.helpfulness_model=runs/tiny/06b_safety_reward_model/checkpoints >wrong_kind.log 2>&1
rc=$?
[[ $rc == 2 ]] && grep -q "reward.helpfulness_model\|\[reward\] helpfulness_model" wrong_kind.log && grep -q "is a pointwise reward model" wrong_kind.log \
  || { cat wrong_kind.log; fail "a pointwise helpfulness model was not refused (exit $rc)"; }
"$bin" "$root/inputs/pipeline/07_rl_all_tiny.deck" --set run.output_dir=wrong_stage \
  --set reward.harmlessness_model=runs/tiny/05_sft/checkpoints >wrong_stage.log 2>&1
rc=$?
[[ $rc == 2 ]] && grep -q "written by the sft stage, not by reward_model" wrong_stage.log \
  || { cat wrong_stage.log; fail "an sft checkpoint as harmlessness model was not refused (exit $rc)"; }
if [[ -n $keep ]]; then
  rm -rf "$keep" && mkdir -p "$keep/runs/tiny/09_evaluate" "$keep/runs/tiny/logs" || fail "cannot write $keep"
  cp runs/tiny/logs/times.tsv "$keep/runs/tiny/logs/" && cp -r runs/tiny/08a_distill_data "$keep/runs/tiny/" &&
    cp -r runs/tiny/09_evaluate/07_rl_all "$keep/runs/tiny/09_evaluate/" || fail "keeping the teacher's products in $keep"
fi
echo PASS
