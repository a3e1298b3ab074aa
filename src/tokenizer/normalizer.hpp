// Normalizer: Hugging Face's text normalizers (Sequence, NFC/NFD/NFKC/NFKD by utf8proc, Lowercase, Replace,
// Prepend, Strip) read from tokenizer.json and applied to the text between added tokens.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tokenizer/regex.hpp"

namespace r1 {

class Normalizer {
 public:
  Normalizer() = default;
  // j: the "normalizer" value (null: none). where names the file and JSON path in errors.
  static Normalizer from_json(const nlohmann::json& j, const std::string& where);

  bool empty() const { return steps_.empty(); }
  // Invalid UTF-8 bytes pass through unchanged; the forms and case apply to the valid runs between them.
  std::string apply(std::string_view text) const;

 private:
  enum class Kind { nfc, nfd, nfkc, nfkd, lowercase, replace, prepend, strip };
  struct Step {
    Kind kind;
    std::string pattern, content;  // replace: a literal pattern (when regex is null); prepend: content
    std::shared_ptr<const Regex> regex;
    bool left = false, right = false;  // strip
  };
  static void parse(const nlohmann::json& j, const std::string& where, std::vector<Step>& steps);

  std::vector<Step> steps_;
};

}  // namespace r1
