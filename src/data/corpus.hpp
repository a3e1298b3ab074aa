// Pretraining text: a token stream (byte-level tokens) cut into fixed-length sequences addressed by a
// global sequence index, so every rank of every layout reads the same global batch.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/batch.hpp"

namespace r1 {

class Deck;

// Byte-level tokens: a byte b is token b; then the special tokens.
inline constexpr std::int32_t kTokEos = 256;
inline constexpr std::int32_t kTokPad = 257;
inline constexpr std::int32_t kByteVocab = 258;

std::vector<std::int32_t> byte_tokens(const std::string& text);

// Worked arithmetic problems ("Compute 12 + 7 * 3. 7 * 3 = 21. 12 + 21 = 33. Answer: 33"), seeded:
// a stand-in corpus until the full synthetic reasoning world (issue 7) replaces it.
std::vector<std::string> synthetic_arithmetic(std::int64_t examples, std::uint64_t seed);

class Corpus {
 public:
  // data.source = files: data.train_path, plain text (documents separated by blank lines) or JSONL with
  // a "text" field; synthetic: synthetic_arithmetic(data.synthetic_examples, run.seed).
  static Corpus from_deck(const Deck& deck, std::int64_t vocab_size);
  explicit Corpus(const std::vector<std::string>& documents);

  std::int64_t tokens() const { return static_cast<std::int64_t>(stream_.size()); }
  // Sequences per pass over the stream at this length.
  std::int64_t sequences(std::int64_t seq_len) const;
  // Rows [first, first + count) of the global sequence order (wrapping into later epochs, each epoch
  // in a seeded random order when shuffle is set) as one micro-batch.
  TokenBatch batch(std::int64_t first, std::int64_t count, std::int64_t seq_len, std::uint64_t seed, bool shuffle) const;

 private:
  std::vector<std::int32_t> stream_;  // documents joined by EOS
};

}  // namespace r1
