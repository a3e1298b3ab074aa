#!/usr/bin/env bash
# The recipes of inputs/recipes (docs/recipes.md) end to end (CPU), each from its own decks with only paths
# and sizes set on the command line. The setup writes a tiny random Hugging Face DeepSeek-V3 model: the tiny
# MoE, its vocabulary sized to DeepSeek-V3's real tokenizer.json (the fixture), one pretraining step, then
# export_hf, with the fixture's tokenizer.json and tokenizer_config.json beside the weights.
# (a) r1zero_*: import_hf -> R1-Zero GRPO on GSM8K JSONL (r1-zero template, DeepSeek's tokenizer) -> evaluate.
# (b) cold_start_*: SFT on a JSONL of R1-format (prompt, response) rows in the DeepSeek-R1 template -> GRPO.
# (c) evaluate_*: evaluate the import on GSM8K and on MATH (pass@1 over k, pass@k, cons@k; auto picks
#     deepseek-r1) -> export_hf (fp32 here): the same files as the model imported, byte for byte.
# The transformers load-back of an export is tools/hf_roundtrip.py, on the GPU machine (docs/recipes.md).
#   usage: recipes_test.sh R1HPC_BINARY PYTHON
set -uo pipefail
bin=$1
py=$2
here=$(cd "$(dirname "$0")" && pwd)
recipes="$here/../../inputs/recipes"
fixture="$here/../tokenizer/fixtures/families/deepseek_v3"
gsm8k="$here/../data/fixtures/gsm8k_tiny.jsonl"
# shellcheck source=tests/e2e/common.sh
source "$here/common.sh"

tiny=(--set model.preset=tiny --set model.vocab_size=6784 --set model.max_seq_len=256)
"$bin" "$here/pretrain_tiny.deck" "${tiny[@]}" --set data.seq_len=64 --set data.tokenizer="$fixture/tokenizer.json" \
  --set data.synthetic_examples=40 --set run.max_steps=1 --set run.output_dir=random >random.log 2>&1 \
  || { cat random.log; fail "the random base"; }
"$bin" "$here/pretrain_tiny.deck" --set run.stage=export_hf --set checkpoint.load=random/checkpoints --set hf.path=hf_model \
  --set hf.dtype=fp32 --set run.output_dir=export >export.log 2>&1 || { cat export.log; fail "export_hf of the random base"; }
cp "$fixture/tokenizer.json" "$fixture/tokenizer_config.json" hf_model/

# (a) R1-Zero on GSM8K.
"$bin" "$recipes/import_hf.deck" --set hf.path=hf_model >import.log 2>&1 || { cat import.log; fail "import_hf"; }
a=(--set model.preset=runs/recipes/import/model.deck --set data.tokenizer=hf_model/tokenizer.json)
"$bin" "$recipes/r1zero_1_grpo.deck" "${a[@]}" --set data.train_path="$gsm8k" --set run.max_steps=2 --set grpo.group_size=2 \
  --set grpo.prompts_per_step=2 --set sampling.max_new_tokens=12 --set train.micro_batch=2 >a2.log 2>&1 \
  || { cat a2.log; fail "recipe a: grpo"; }
grep -q "r1-zero template, problems of gsm8k (2 in data.train_path)" a2.log || { cat a2.log; fail "recipe a: grpo did not run on the GSM8K file"; }
"$bin" "$recipes/r1zero_2_evaluate.deck" "${a[@]}" --set data.eval_path="$gsm8k" --set sampling.max_new_tokens=12 \
  >a3.log 2>&1 || { cat a3.log; fail "recipe a: evaluate"; }
"$py" - <<'PY' || fail "recipe a: the records"
import json
steps = [json.loads(l) for l in open("runs/recipes/r1zero/grpo/metrics.jsonl") if '"step"' in l]
assert [s["step"] for s in steps][-2:] == [1, 2], steps
r = json.load(open("runs/recipes/r1zero/evaluate/eval.json"))
assert r["dataset"] == "gsm8k" and r["sampling"]["template"] == "r1-zero", r
assert r["checkpoint_step"] == 2 and r["overall"]["prompts"] == 2 and r["overall"]["samples"] == 8, r
for k in ("pass@1", "pass@4", "cons@4"):
    assert 0 <= r["overall"][k] <= 1, (k, r["overall"])
PY

# (b) Cold start, then reasoning RL.
"$py" - "$gsm8k" <<'PY' || fail "recipe b: the cold-start JSONL"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
with open("cold_start.jsonl", "w") as out:
    for r in rows:
        answer = r["answer"].split("####")[-1].strip()
        out.write(json.dumps({"prompt": r["question"], "response": f"<think>\n{r['answer'].split('####')[0].strip()}\n</think>\n<answer>{answer}</answer>"}) + "\n")
PY
"$bin" "$recipes/cold_start_1_sft.deck" "${a[@]}" --set data.train_path=cold_start.jsonl --set data.seq_len=128 \
  --set run.max_steps=2 --set train.micro_batch=2 --set train.global_batch=2 >b1.log 2>&1 || { cat b1.log; fail "recipe b: sft"; }
grep -q "2 examples .* in the deepseek-r1 template" b1.log || { cat b1.log; fail "recipe b: sft did not use the DeepSeek-R1 template"; }
"$bin" "$recipes/cold_start_2_grpo.deck" "${a[@]}" --set data.train_path="$gsm8k" --set run.max_steps=1 --set grpo.group_size=2 \
  --set grpo.prompts_per_step=2 --set sampling.max_new_tokens=12 --set train.micro_batch=2 >b2.log 2>&1 \
  || { cat b2.log; fail "recipe b: grpo"; }
grep -q "starting from .*runs/recipes/cold_start/sft/checkpoints/step-00000002" b2.log || { cat b2.log; fail "recipe b: grpo did not start from the SFT"; }
grep -q "deepseek-r1 template, problems of gsm8k" b2.log || { cat b2.log; fail "recipe b: grpo template or data"; }

# (c) Evaluate the import on GSM8K and MATH, export it: the files the import read.
c=("${a[@]}" --set sampling.samples_per_prompt=2 --set evaluate.pass_k=1,2 --set sampling.max_new_tokens=8)
for set in gsm8k math; do
  "$bin" "$recipes/evaluate_1_gsm8k_math.deck" "${c[@]}" --set data.eval_path="$here/../data/fixtures/${set}_tiny.jsonl" \
    --set run.output_dir=runs/recipes/evaluate/$set >c1_$set.log 2>&1 || { cat c1_$set.log; fail "recipe c: evaluate on $set"; }
done
"$bin" "$recipes/evaluate_2_export.deck" --set hf.path=exported --set hf.dtype=fp32 >c2.log 2>&1 || { cat c2.log; fail "recipe c: export_hf"; }
for f in config.json model.safetensors; do cmp hf_model/$f exported/$f || fail "recipe c: the export's $f differs from the imported model's"; done
"$py" - <<'PY' || fail "recipe c: the reports"
import json
g, m = (json.load(open(f"runs/recipes/evaluate/{s}/eval.json")) for s in ("gsm8k", "math"))
assert g["dataset"] == "gsm8k" and m["dataset"] == "math", (g["dataset"], m["dataset"])
for r in (g, m):
    assert r["sampling"]["template"] == "deepseek-r1", r["sampling"]
    assert all(k in r["overall"] for k in ("pass@1", "pass@2", "cons@2")), r["overall"]
PY
echo "PASS"
