// AddedVocabulary: the added (special) tokens of a tokenizer, matched whole in the text before
// pre-tokenization, as Hugging Face tokenizers does (leftmost-longest, lstrip/rstrip, normalized or raw).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace r1 {

struct AddedToken {
  std::int32_t id = -1;
  std::string content;
  bool lstrip = false, rstrip = false;  // the match takes the whitespace on its left / right with it
  bool normalized = false;              // matched in the normalized text (else in the raw text, first)
  bool special = true;
};

class AddedVocabulary {
 public:
  AddedVocabulary() = default;
  explicit AddedVocabulary(std::vector<AddedToken> tokens);

  // A stretch of text: an added token (id >= 0) or text to tokenize (id -1); offset: where it starts.
  struct Section {
    std::string_view text;
    std::size_t offset;
    std::int32_t id;
  };
  // Byte ranges [first, second) of a text.
  using Ranges = std::vector<std::pair<std::size_t, std::size_t>>;
  // Cuts text at the added tokens whose `normalized` flag equals normalized, appending the sections in
  // order. At each position the longest token wins; the leftmost position wins over a longer later one.
  // open: where a token may match (it must lie wholly inside one range); null: anywhere.
  void split(std::string_view text, bool normalized, std::vector<Section>& out, const Ranges* open = nullptr) const;
  bool any(bool normalized) const { return count_[normalized] > 0; }
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  std::vector<AddedToken> tokens_;
  std::array<std::vector<std::size_t>, 256> by_first_byte_[2];  // indices into tokens_, longest first
  std::size_t count_[2] = {0, 0};
};

}  // namespace r1
