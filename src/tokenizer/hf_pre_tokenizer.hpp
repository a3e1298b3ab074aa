// HfPreTokenizer: Hugging Face's pre-tokenizers (Sequence, Split with every behavior and invert, ByteLevel
// with or without its regex, Digits, Metaspace) read from tokenizer.json; cuts text into BPE pieces.
#pragma once
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tokenizer/regex.hpp"

namespace r1 {

class HfPreTokenizer {
 public:
  HfPreTokenizer() = default;
  // j: the "pre_tokenizer" value (null: none, the whole text is one piece); where: file and JSON path.
  static HfPreTokenizer from_json(const nlohmann::json& j, const std::string& where);

  // Whether a ByteLevel step is present: then vocabulary tokens are written in the byte-level alphabet.
  bool byte_level() const { return byte_level_; }
  // Appends the pieces of one section of normalized text (the text between added tokens) to out: views
  // into text or into arena (text a step rewrote), valid while both live.
  // at_start: the section begins the input (Metaspace's prepend_scheme "first" prepends only there).
  void split(std::string_view text, bool at_start, std::deque<std::string>& arena, std::vector<std::string_view>& out) const;

  enum class Behavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

 private:
  enum class Kind { split, byte_level, metaspace };
  enum class Prepend { always, first, never };
  struct Step {
    Kind kind;
    std::shared_ptr<const Regex> regex;  // split (null: literal); byte_level with use_regex
    std::string literal;                 // split with a String pattern; metaspace: the replacement
    Behavior behavior = Behavior::isolated;
    bool invert = false, add_prefix_space = false, split = true;
    Prepend prepend = Prepend::always;
  };
  struct Piece {
    std::string_view text;
    bool at_start;
  };
  void parse(const nlohmann::json& j, const std::string& where);
  static void apply(const Step& step, Piece piece, std::deque<std::string>& arena, std::vector<Piece>& out);

  std::vector<Step> steps_;
  bool byte_level_ = false;
};

// The pattern of GPT-2's ByteLevel pre-tokenizer (use_regex true), for PCRE2.
extern const char* const kGpt2Regex;

}  // namespace r1
