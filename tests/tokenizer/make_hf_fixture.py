#!/usr/bin/env python3
"""Makes tests/tokenizer/fixtures/hf_gpt2_bpe.json with Hugging Face `tokenizers` (a GPT-2-style byte-level
BPE: ByteLevel pre-tokenizer with its regex, ByteLevel decoder) and prints the encodings that
tests/tokenizer/hf_json_test.cpp expects of it.   usage: make_hf_fixture.py OUT.json"""
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

CORPUS = [
    "The quick brown fox jumps over the lazy dog. It's 12 o'clock and we're here.",
    "First, 7 times 3 is 21, so the expression becomes 12 + 21. Finally, 12 plus 21 is 33.",
    "Hello! How can I help you today? The capital of France is Paris.",
] * 20
SAMPLES = ["The fox jumps over 21 dogs.", "It's 33, isn't it?", "Hello  there\n\nworld", "<think>7 times 3</think><answer>21</answer>"]


def main():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|eos|>", "<|pad|>", "<think>", "</think>", "<answer>", "</answer>", "<|user|>", "<|assistant|>"]
    trainer = trainers.BpeTrainer(vocab_size=330, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    tok.save(sys.argv[1])
    for s in SAMPLES:
        print(repr(s), tok.encode(s).ids)


if __name__ == "__main__":
    main()
