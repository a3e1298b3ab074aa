#include "tokenizer/pretokenize.hpp"

#include "core/error.hpp"
#include "tokenizer/hf_pre_tokenizer.hpp"
#include "tokenizer/regex.hpp"

namespace r1 {

const char* const kR1hpcSplitRegex =
    R"( ?(?:[A-Za-z]|[^\x00-\x7F])+| ?[0-9]| ?[\x00-\x08\x0E-\x1F!-/:-@\[-`{-\x7F]+|[\t-\r ]+(?![^\t-\r ])|[\t-\r ]+)";

namespace {

bool is_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
bool is_letter(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80; }
bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool is_punct(unsigned char c) { return !is_space(c) && !is_letter(c) && !is_digit(c); }

// GPT-2's regex matches and the text between them (only invalid UTF-8 is left between), in order.
std::vector<std::string_view> gpt2_pieces(std::string_view text) {
  static const Regex re(kGpt2Regex, "GPT-2's ByteLevel regex");
  std::vector<std::pair<std::size_t, std::size_t>> matches;
  re.find_all(text, matches);
  std::vector<std::string_view> pieces;
  std::size_t at = 0;
  for (const auto& [b, e] : matches) {
    if (b > at) pieces.push_back(text.substr(at, b - at));
    pieces.push_back(text.substr(b, e - b));
    at = e;
  }
  if (at < text.size()) pieces.push_back(text.substr(at));
  return pieces;
}

}  // namespace

std::vector<std::string_view> pretokenize(std::string_view text, PreTokenizer rules) {
  R1_CHECK(rules != PreTokenizer::hf, "pretokenize: a tokenizer.json pipeline splits with HfPreTokenizer");
  if (rules == PreTokenizer::gpt2) return gpt2_pieces(text);
  std::vector<std::string_view> pieces;
  const std::size_t n = text.size();
  auto at = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  std::size_t i = 0;
  while (i < n) {
    std::size_t j = i;
    if (at(j) == ' ' && j + 1 < n && !is_space(at(j + 1))) ++j;  // the optional leading space
    if (!is_space(at(j))) {
      std::size_t k = j + 1;
      if (is_letter(at(j))) {
        while (k < n && is_letter(at(k))) ++k;
      } else if (!is_digit(at(j))) {  // (a digit stands alone)
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
