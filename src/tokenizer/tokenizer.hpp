// Tokenizer: byte-level BPE (trained here or loaded from a Hugging Face tokenizer.json) and the byte
// fallback (256 byte tokens + the special tokens) behind one interface.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tokenizer/pretokenize.hpp"

namespace r1 {

// The special tokens r1hpc's templates use, in the order the byte tokenizer and train_bpe give them ids
// (right after the 256 byte tokens, so a trained vocabulary extends the byte one).
inline const std::vector<std::string>& r1_special_tokens() {
  static const std::vector<std::string> s{"<|eos|>", "<|pad|>", "<think>", "</think>", "<answer>", "</answer>",
                                          "<|user|>", "<|assistant|>"};
  return s;
}

// Ids of the special tokens by role; -1 where a loaded tokenizer lacks one.
struct SpecialIds {
  std::int32_t eos = -1, pad = -1, think = -1, think_end = -1, answer = -1, answer_end = -1, user = -1, assistant = -1;
};

// The byte tokenizer's fixed ids: byte b is token b, then r1_special_tokens().
inline constexpr std::int32_t kTokEos = 256;
inline constexpr std::int32_t kTokPad = 257;
inline constexpr std::int32_t kByteVocab = 264;

class Tokenizer {
 public:
  using Merge = std::pair<std::int32_t, std::int32_t>;
  // tokens[id]: the raw bytes of token id (a special token: its text). merges in priority order; each
  // merged pair's bytes must be a token. specials: ids matched whole in the input and never split.
  // source names the tokenizer in errors ("byte", a file path, "train_bpe").
  Tokenizer(std::vector<std::string> tokens, std::vector<Merge> merges, std::vector<std::int32_t> specials, PreTokenizer rules,
            std::string source);

  std::vector<std::int32_t> encode(std::string_view text) const;
  // The bytes of the tokens, concatenated: decode(encode(s)) == s for every byte string s.
  std::string decode(std::span<const std::int32_t> ids) const;

  std::int64_t vocab_size() const { return static_cast<std::int64_t>(tokens_.size()); }
  const std::string& token(std::int32_t id) const;
  const std::vector<Merge>& merges() const { return merges_; }
  const std::vector<std::int32_t>& special_token_ids() const { return specials_; }
  bool is_special(std::int32_t id) const;
  const SpecialIds& special_ids() const { return ids_; }
  // The id of a special token by its text; throws a user error naming the tokenizer when it has none.
  std::int32_t special_id(std::string_view text) const;
  PreTokenizer pre_tokenizer() const { return rules_; }
  const std::string& source() const { return source_; }

 private:
  void encode_piece(std::string_view piece, std::vector<std::int32_t>& out) const;

  std::vector<std::string> tokens_;
  std::vector<Merge> merges_;
  std::vector<std::int32_t> specials_;  // longest text first, so the longest special wins a match
  PreTokenizer rules_;
  std::string source_;
  std::int32_t byte_id_[256];
  std::unordered_map<std::uint64_t, std::pair<std::int32_t, std::int32_t>> rank_;  // pair -> (rank, merged id)
  SpecialIds ids_;
};

// 256 byte tokens + r1_special_tokens(): no merges.
Tokenizer byte_tokenizer();

// Learns merges on texts: the vocabulary is the 256 bytes, then special_tokens, then one token per merge
// until vocab_size tokens (fewer when no pair occurs twice). Each step merges the most frequent adjacent
// pair within pre-tokenized (r1hpc rules) pieces; ties go to the pair of smaller ids (left, then right),
// so training is deterministic. Special-token text in the corpus is cut out before counting.
Tokenizer train_bpe(const std::vector<std::string>& texts, std::int64_t vocab_size, const std::vector<std::string>& special_tokens);

// Hugging Face tokenizer.json (model BPE, ByteLevel pre-tokenizer and decoder). Loads files whose
// pre-tokenizer is GPT-2's ByteLevel (use_regex = true) or the r1hpc Split that save writes; errors name
// the file and the key.
Tokenizer load_hf_tokenizer(const std::string& path);
void save_hf_tokenizer(const Tokenizer& tokenizer, const std::string& path);

// "byte" or the path of a tokenizer.json.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& spec);

}  // namespace r1
