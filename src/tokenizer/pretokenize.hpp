// Pre-tokenizers: split text into pieces that BPE merges never cross, by hand-written rules (no regex
// engine) on byte classes, so that any byte string, valid UTF-8 or not, has one split.
#pragma once
#include <string_view>
#include <vector>

namespace r1 {

// Byte classes: whitespace = ASCII space, \t \n \v \f \r; letter = ASCII letter or any byte >= 0x80 (so a
// UTF-8 word such as "años" stays one piece); digit = 0-9; punctuation = every other byte.
// Pieces, matched at each position in this order:
//   gpt2 only: a contraction 's 't 're 've 'm 'll 'd;
//   an optional single space followed by: a run of letters | digits (r1hpc: ONE digit, so numbers
//   tokenize digit by digit and arithmetic stays learnable; gpt2: a run) | a run of punctuation;
//   a run of whitespace, less its last character when a non-whitespace byte follows (that character
//   then starts the next piece: a space joins the next word, any other whitespace stands alone).
// gpt2 reproduces GPT-2's regex (Hugging Face ByteLevel, use_regex = true) exactly on ASCII text.
enum class PreTokenizer { r1hpc, gpt2 };

std::vector<std::string_view> pretokenize(std::string_view text, PreTokenizer rules);

// The r1hpc rules as an Oniguruma regex for a Hugging Face Split pre-tokenizer (behavior Isolated),
// so that the tokenizers library splits text exactly as pretokenize(.., r1hpc) does.
extern const char* const kR1hpcSplitRegex;

}  // namespace r1
