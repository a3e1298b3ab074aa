#include "tokenizer/pretokenize.hpp"

namespace r1 {

const char* const kR1hpcSplitRegex =
    R"( ?(?:[A-Za-z]|[^\x00-\x7F])+| ?[0-9]| ?[\x00-\x08\x0E-\x1F!-/:-@\[-`{-\x7F]+|[\t-\r ]+(?![^\t-\r ])|[\t-\r ]+)";

namespace {

bool is_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
bool is_letter(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80; }
bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool is_punct(unsigned char c) { return !is_space(c) && !is_letter(c) && !is_digit(c); }

// Length of a GPT-2 contraction at text[i] (an apostrophe), 0 when none starts there.
std::size_t contraction(std::string_view text, std::size_t i) {
  for (std::string_view c : {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"})
    if (text.substr(i).starts_with(c)) return c.size();
  return 0;
}

}  // namespace

std::vector<std::string_view> pretokenize(std::string_view text, PreTokenizer rules) {
  std::vector<std::string_view> pieces;
  const std::size_t n = text.size();
  auto at = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  std::size_t i = 0;
  while (i < n) {
    if (rules == PreTokenizer::gpt2 && at(i) == '\'') {
      if (const std::size_t len = contraction(text, i)) {
        pieces.push_back(text.substr(i, len));
        i += len;
        continue;
      }
    }
    std::size_t j = i;
    if (at(j) == ' ' && j + 1 < n && !is_space(at(j + 1))) ++j;  // the optional leading space
    if (!is_space(at(j))) {
      std::size_t k = j + 1;
      if (is_letter(at(j))) {
        while (k < n && is_letter(at(k))) ++k;
      } else if (is_digit(at(j))) {
        if (rules == PreTokenizer::gpt2)
          while (k < n && is_digit(at(k))) ++k;
      } else {
        while (k < n && is_punct(at(k))) ++k;
      }
      pieces.push_back(text.substr(i, k - i));
      i = k;
      continue;
    }
    std::size_t k = i;
    while (k < n && is_space(at(k))) ++k;
    const std::size_t end = (k < n && k - 1 > i) ? k - 1 : k;
    pieces.push_back(text.substr(i, end - i));
    i = end;
  }
  return pieces;
}

}  // namespace r1
