// Pre-tokenizers: split text into pieces that BPE merges never cross: r1hpc's own rules, hand-written on
// byte classes so that any byte string, valid UTF-8 or not, has one split, and GPT-2's.
#pragma once
#include <string_view>
#include <vector>

namespace r1 {

// Byte classes: whitespace = ASCII space, \t \n \v \f \r; letter = ASCII letter or any byte >= 0x80 (so a
// UTF-8 word such as "años" stays one piece); digit = 0-9; punctuation = every other byte.
// r1hpc pieces, matched at each position in this order:
//   an optional single space followed by: a run of letters | ONE digit (so numbers tokenize digit by
//   digit and arithmetic stays learnable) | a run of punctuation;
//   a run of whitespace, less its last character when a non-whitespace byte follows (that character
//   then starts the next piece: a space joins the next word, any other whitespace stands alone).
// gpt2 is GPT-2's regex (Hugging Face ByteLevel, use_regex = true), run by PCRE2 (kGpt2Regex).
// hf: a tokenizer.json's own pipeline (HfPipeline), not a rule set of pretokenize.
enum class PreTokenizer { r1hpc, gpt2, hf };

std::vector<std::string_view> pretokenize(std::string_view text, PreTokenizer rules);

// The r1hpc rules as an Oniguruma regex for a Hugging Face Split pre-tokenizer (behavior Isolated),
// so that the tokenizers library splits text exactly as pretokenize(.., r1hpc) does.
extern const char* const kR1hpcSplitRegex;

}  // namespace r1
