#include "tokenizer/added_tokens.hpp"

#include <algorithm>

#include "tokenizer/utf8.hpp"

namespace r1 {

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

void AddedVocabulary::split(std::string_view text, bool normalized, std::vector<Section>& out, const Ranges* open) const {
  const auto allowed = [open](std::size_t b, std::size_t e) {
    return !open || std::any_of(open->begin(), open->end(), [&](const auto& r) { return r.first <= b && e <= r.second; });
  };
  std::size_t start = 0;  // where the text not yet emitted begins
  for (std::size_t i = 0; i < text.size();) {
    const AddedToken* hit = nullptr;
    for (std::size_t k : by_first_byte_[normalized][static_cast<unsigned char>(text[i])])
      if (text.substr(i).starts_with(tokens_[k].content) && allowed(i, i + tokens_[k].content.size())) {
        hit = &tokens_[k];
        break;
      }
    if (!hit) {
      ++i;
      continue;
    }
    const std::size_t b = hit->lstrip ? utf8::skip_whitespace_back(text, i, start) : i;
    const std::size_t e = hit->rstrip ? utf8::skip_whitespace(text, i + hit->content.size()) : i + hit->content.size();
    if (b > start) out.push_back({text.substr(start, b - start), start, -1});
    out.push_back({text.substr(b, e - b), b, hit->id});
    start = i = e;
  }
  if (start < text.size()) out.push_back({text.substr(start), start, -1});
}

}  // namespace r1
