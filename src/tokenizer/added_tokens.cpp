#include "tokenizer/added_tokens.hpp"

#include <algorithm>

#include "tokenizer/utf8.hpp"

namespace r1 {
namespace {

// Start of the whitespace run that ends at `end` (not before `floor`).
std::size_t whitespace_before(std::string_view text, std::size_t end, std::size_t floor) {
  while (end > floor) {
    std::size_t s = end - 1;
    while (s > floor && (static_cast<unsigned char>(text[s]) & 0xC0) == 0x80) --s;
    const std::size_t len = utf8::sequence_length(text, s);
    if (len != end - s || !utf8::is_whitespace(utf8::decode(text, s, len))) break;
    end = s;
  }
  return end;
}

std::size_t whitespace_after(std::string_view text, std::size_t begin) {
  while (begin < text.size()) {
    const std::size_t len = utf8::sequence_length(text, begin);
    if (!len || !utf8::is_whitespace(utf8::decode(text, begin, len))) break;
    begin += len;
  }
  return begin;
}

}  // namespace

AddedVocabulary::AddedVocabulary(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  for (std::size_t k = 0; k < tokens_.size(); ++k) {
    if (tokens_[k].content.empty()) continue;
    const bool n = tokens_[k].normalized;
    by_first_byte_[n][static_cast<unsigned char>(tokens_[k].content[0])].push_back(k);
    ++count_[n];
  }
  for (auto& table : by_first_byte_)
    for (auto& list : table)
      std::stable_sort(list.begin(), list.end(), [&](std::size_t a, std::size_t b) { return tokens_[a].content.size() > tokens_[b].content.size(); });
}

void AddedVocabulary::split(std::string_view text, bool normalized, std::vector<Section>& out) const {
  std::size_t start = 0;  // where the text not yet emitted begins
  for (std::size_t i = 0; i < text.size();) {
    const AddedToken* hit = nullptr;
    for (std::size_t k : by_first_byte_[normalized][static_cast<unsigned char>(text[i])])
      if (text.substr(i).starts_with(tokens_[k].content)) {
        hit = &tokens_[k];
        break;
      }
    if (!hit) {
      ++i;
      continue;
    }
    const std::size_t b = hit->lstrip ? whitespace_before(text, i, start) : i;
    const std::size_t e = hit->rstrip ? whitespace_after(text, i + hit->content.size()) : i + hit->content.size();
    if (b > start) out.push_back({text.substr(start, b - start), start, -1});
    out.push_back({text.substr(b, e - b), b, hit->id});
    start = i = e;
  }
  if (start < text.size()) out.push_back({text.substr(start), start, -1});
}

}  // namespace r1
