// Regex: a PCRE2 pattern (UTF + Unicode properties, JIT-compiled) that finds the non-overlapping matches
// Hugging Face's Split and ByteLevel pre-tokenizers split on. Invalid UTF-8 in the text never matches.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace r1 {

class Regex {
 public:
  // Throws a user error naming where (the file and JSON path) when PCRE2 rejects the pattern.
  Regex(const std::string& pattern, const std::string& where);
  // Byte ranges [begin, end) of the leftmost non-overlapping non-empty matches, left to right.
  void find_all(std::string_view text, std::vector<std::pair<std::size_t, std::size_t>>& out) const;

 private:
  std::shared_ptr<void> code_;  // pcre2_code_8, freed by pcre2_code_free
};

}  // namespace r1
