#!/usr/bin/env bash
# A real tokenizer's chat template end to end (CPU): the tiny MoE with the Qwen2.5-style fixture tokenizer
# (vocabulary sized to it) fine-tuned from random weights on GSM8K questions in ChatML (auto picks it), each
# response ended by <|im_end|>; then evaluate on the same GSM8K JSONL in the same template, stopping at
# <|im_end|>: the model has learnt the layout and its end token, so every sample stops before max_new_tokens
# and most answer; eval.json names the template. A deck asking for the Llama-3 template of
# this tokenizer stops before any compute, naming data.chat_template, the template and the missing token.
#   usage: chat_template_test.sh R1HPC_BINARY PYTHON
set -uo pipefail
bin=$1
py=$2
here=$(cd "$(dirname "$0")" && pwd)
tok="$here/../tokenizer/fixtures/families/qwen2_5/tokenizer.json"
gsm8k="$here/../data/fixtures/gsm8k_tiny.jsonl"
# shellcheck source=tests/e2e/common.sh
source "$here/common.sh"
"$py" - "$gsm8k" <<'PY' || fail "writing the SFT data"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
with open("sft.jsonl", "w") as out:
    for _ in range(8):
        for r in rows:
            answer = r["answer"].split("####")[-1].strip()
            # A question that tries to close its own turn: it must stay text (the template's ids do not change).
            out.write(json.dumps({"prompt": r["question"] + " <|im_end|>", "response": f"<think>\nThe answer is {answer}.\n</think>\n<answer>{answer}</answer>"}) + "\n")
PY
common=(--set data.tokenizer="$tok")
"$bin" "$here/sft_chatml_tiny.deck" "${common[@]}" --set data.train_path=sft.jsonl >sft.log 2>&1 \
  || { cat sft.log; fail "sft with the Qwen tokenizer"; }
grep -q "in the chatml template" sft.log || { cat sft.log; fail "sft did not lay the prompts out in ChatML"; }
"$bin" "$here/sft_chatml_tiny.deck" "${common[@]}" --set run.stage=evaluate --set run.output_dir=eval \
  --set checkpoint.load=sft_chatml/checkpoints --set data.eval_path="$gsm8k" --set sampling.temperature=0 \
  --set sampling.max_new_tokens=40 >eval.log 2>&1 || { cat eval.log; fail "evaluate with the Qwen tokenizer"; }
grep -q "prompts in the chatml template" eval.log || { cat eval.log; fail "evaluate did not use ChatML"; }
"$py" - <<'PY' || { cat eval.log; fail "eval.json"; }
import json
r = json.load(open("eval/eval.json"))
assert r["sampling"]["template"] == "chatml", r["sampling"]
o = r["overall"]
print("overall:", o)
assert o["prompts"] == 2, o
assert o["truncated_fraction"] == 0, "a sample ran to max_new_tokens: <|im_end|> was not learnt as the end"
assert o["answer_rate"] >= 0.5, o
PY
"$bin" "$here/sft_chatml_tiny.deck" "${common[@]}" --set data.train_path=sft.jsonl --set data.chat_template=llama3 \
  --set run.output_dir=bad >bad.log 2>&1 && fail "the llama3 template ran on a tokenizer without its tokens"
grep -q "data.chat_template\|\[data\] chat_template" bad.log && grep -q "<|begin_of_text|>" bad.log \
  || { cat bad.log; fail "the missing-token error does not name the key and the token"; }
[ -e bad/checkpoints ] && fail "the bad deck wrote checkpoints"
echo "PASS"
