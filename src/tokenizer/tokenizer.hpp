// Tokenizer: BPE (trained here, or loaded from a Hugging Face tokenizer.json with its normalizer,
// pre-tokenizer, added tokens and decoder) and the byte tokenizer (256 byte tokens + the special tokens).
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tokenizer/added_tokens.hpp"
#include "tokenizer/hf_decoder.hpp"
#include "tokenizer/hf_pre_tokenizer.hpp"
#include "tokenizer/normalizer.hpp"
#include "tokenizer/pretokenize.hpp"

namespace r1 {

// The special tokens r1hpc's templates use, in the order the byte tokenizer and train_bpe give them ids
// (right after the 256 byte tokens, so a trained vocabulary extends the byte one).
inline const std::vector<std::string>& r1_special_tokens() {
  static const std::vector<std::string> s{"<|eos|>", "<|pad|>", "<think>", "</think>", "<answer>", "</answer>",
                                          "<|user|>", "<|assistant|>"};
  return s;
}

// Ids of the special tokens by role; -1 where a loaded tokenizer lacks one. bos and eos come from
// sequence_ids() where the r1hpc names are absent.
struct SpecialIds {
  std::int32_t bos = -1, eos = -1, pad = -1, think = -1, think_end = -1, answer = -1, answer_end = -1, user = -1, assistant = -1;
};

// The byte tokenizer's fixed ids: byte b is token b, then r1_special_tokens().
inline constexpr std::int32_t kTokEos = 256;
inline constexpr std::int32_t kTokPad = 257;
inline constexpr std::int32_t kByteVocab = 264;

// What a sequence starts and ends with: the post-processor's special tokens, or tokenizer_config.json's
// bos_token / eos_token with add_bos_token / add_eos_token.
struct SequenceIds {
  std::int32_t bos = -1, eos = -1;
  bool add_bos = false, add_eos = false;
};

// The parts of a Hugging Face tokenizer.json beyond vocabulary and merges.
struct HfPipeline {
  Normalizer normalizer;
  HfPreTokenizer pre_tokenizer;
  HfDecoder decoder;
  bool ignore_merges = false;  // a piece that is a whole vocabulary token is that token (Llama-3)
  bool byte_fallback = false;  // characters outside the vocabulary become <0xAB> byte tokens
  bool fuse_unk = false;       // consecutive unknown characters become one unk token
  std::int32_t unk = -1;
  std::string sections_json;  // normalizer, pre_tokenizer, post_processor, decoder as read: written back by save
};

// Hashes std::string and std::string_view alike, so maps keyed by string are searched with views.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// A stretch of text to encode, and whether added tokens are matched in it (false: a user's text, which then
// cannot turn into a special token however it is written).
struct TextPart {
  std::string_view text;
  bool match_added = true;
};

class Tokenizer {
 public:
  using Merge = std::pair<std::int32_t, std::int32_t>;
  // tokens[id]: the raw bytes of token id (a special token: its text). merges in priority order; each
  // merged pair's bytes must be a token. specials: ids matched whole in the input and never split.
  // source names the tokenizer in errors ("byte", a file path, "train_bpe").
  Tokenizer(std::vector<std::string> tokens, std::vector<Merge> merges, std::vector<std::int32_t> specials, PreTokenizer rules,
            std::string source);
  // A tokenizer.json's: tokens[id] are raw bytes when hf's pre-tokenizer is byte-level, else the
  // vocabulary's text (SentencePiece style, decoded by hf's decoder).
  Tokenizer(std::vector<std::string> tokens, std::vector<Merge> merges, std::vector<AddedToken> added, std::shared_ptr<const HfPipeline> hf,
            std::string source);

  // The ids of text, without BOS/EOS; any byte string is encoded, invalid UTF-8 too.
  std::vector<std::int32_t> encode(std::string_view text) const;
  // encode of the parts joined, added tokens matched only inside parts that allow it: the text between two
  // added tokens is one section, pre-tokenized as a whole, whichever parts it spans. A tokenizer that
  // normalizes (not just matches) before its normalized added tokens matches those only in sections
  // that lie wholly in matching parts.
  std::vector<std::int32_t> encode_parts(std::span<const TextPart> parts) const;
  // encode, with the BOS / EOS of sequence_ids() where it adds them.
  std::vector<std::int32_t> encode_sequence(std::string_view text) const;
  // The text of ids: decode(encode(s)) == s for every byte string s (where the normalizer keeps s as it is).
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
  const AddedVocabulary& added_vocabulary() const { return added_; }
  const HfPipeline* hf_pipeline() const { return hf_.get(); }
  const SequenceIds& sequence_ids() const { return sequence_; }
  // Sets BOS/EOS (load_hf_tokenizer does); fills special_ids().bos/eos where they are unset.
  void set_sequence_ids(const SequenceIds& s);

 private:
  void init();
  std::vector<std::int32_t> encode_within(std::string_view text, const AddedVocabulary::Ranges* open) const;
  void pieces(std::string_view section, bool at_start, std::vector<std::int32_t>& out) const;
  void encode_piece(std::string_view piece, std::vector<std::int32_t>& out) const;
  void initial_symbols(std::string_view piece, std::vector<std::int32_t>& sym) const;
  void merge(std::vector<std::int32_t>& sym) const;

  std::vector<std::string> tokens_;
  std::vector<Merge> merges_;
  std::vector<std::int32_t> specials_;  // the added tokens' ids
  std::vector<bool> is_added_;          // by id
  AddedVocabulary added_;
  std::shared_ptr<const HfPipeline> hf_;  // null: r1hpc's own rules or GPT-2's (rules_)
  PreTokenizer rules_;
  std::string source_;
  bool byte_level_ = true;
  std::uint64_t serial_;  // keys this tokenizer's entries in the per-thread piece cache
  std::int32_t byte_id_[256];
  std::int32_t fallback_id_[256];  // <0xAB> tokens (byte_fallback)
  std::unordered_map<std::string, std::int32_t, StringHash, std::equal_to<>> by_text_;  // vocabulary tokens (not added ones) by text
  std::unordered_map<std::int32_t, std::string> special_decode_;  // added tokens whose decoded bytes differ from their text
  std::unordered_map<std::uint64_t, std::pair<std::int32_t, std::int32_t>> rank_;  // pair -> (rank, merged id)
  SpecialIds ids_;
  SequenceIds sequence_;
};

// 256 byte tokens + r1_special_tokens(): no merges.
Tokenizer byte_tokenizer();

// Learns merges on texts: the vocabulary is the 256 bytes, then special_tokens, then one token per merge
// until vocab_size tokens (fewer when no pair occurs twice). Each step merges the most frequent adjacent
// pair within pre-tokenized (r1hpc rules) pieces; ties go to the pair of smaller ids (left, then right),
// so training is deterministic. Special-token text in the corpus is cut out before counting.
Tokenizer train_bpe(const std::vector<std::string>& texts, std::int64_t vocab_size, const std::vector<std::string>& special_tokens);

// Hugging Face tokenizer.json (model BPE; docs/tokenizers.md lists the normalizers, pre-tokenizers and
// decoders read), with BOS/EOS from tokenizer_config.json beside it when present. Errors name the file
// and the JSON path of what is unsupported or wrong.
Tokenizer load_hf_tokenizer(const std::string& path);
void save_hf_tokenizer(const Tokenizer& tokenizer, const std::string& path);

// "byte" or the path of a tokenizer.json.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& spec);

}  // namespace r1
