// train_bpe: merges learned by pair frequency over the distinct pre-tokenized pieces of a corpus.
#include <algorithm>
#include <map>
#include <unordered_map>

#include "core/error.hpp"
#include "tokenizer/tokenizer.hpp"

namespace r1 {
namespace {

// Piece counts of one text, with every occurrence of a special token cut out first.
void count_pieces(std::string_view text, const std::vector<std::string>& specials, std::map<std::string, std::int64_t>& counts) {
  auto add = [&](std::string_view part) {
    for (std::string_view p : pretokenize(part, PreTokenizer::r1hpc)) ++counts[std::string(p)];
  };
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size();) {
    std::size_t hit = 0;
    for (const std::string& s : specials)
      if (text.substr(i).starts_with(s)) hit = std::max(hit, s.size());
    if (hit == 0) {
      ++i;
      continue;
    }
    add(text.substr(start, i - start));
    i += hit;
    start = i;
  }
  add(text.substr(start));
}

}  // namespace

Tokenizer train_bpe(const std::vector<std::string>& texts, std::int64_t vocab_size, const std::vector<std::string>& special_tokens) {
  const auto base = static_cast<std::int64_t>(256 + special_tokens.size());
  R1_REQUIRE(vocab_size >= base, "train_bpe: vocab_size ", vocab_size, " is below the ", base, " byte and special tokens");
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.emplace_back(1, static_cast<char>(b));
  std::vector<std::int32_t> specials;
  for (const std::string& s : special_tokens) {
    R1_REQUIRE(!s.empty(), "train_bpe: a special token is empty");
    specials.push_back(static_cast<std::int32_t>(tokens.size()));
    tokens.push_back(s);
  }

  std::map<std::string, std::int64_t> counts;  // ordered: the word list, hence training, is deterministic
  for (const std::string& t : texts) count_pieces(t, special_tokens, counts);
  std::vector<std::vector<std::int32_t>> words;
  std::vector<std::int64_t> freq;
  for (const auto& [piece, c] : counts) {
    words.emplace_back(piece.begin(), piece.end());
    for (std::int32_t& s : words.back()) s = static_cast<unsigned char>(s);
    freq.push_back(c);
  }

  std::unordered_map<std::string, std::int32_t> by_bytes;  // merged byte strings already in the vocabulary
  for (std::int32_t id = 0; id < 256; ++id) by_bytes.emplace(tokens[id], id);
  std::vector<Tokenizer::Merge> merges;
  while (static_cast<std::int64_t>(tokens.size()) < vocab_size) {
    std::unordered_map<std::uint64_t, std::int64_t> pairs;
    for (std::size_t w = 0; w < words.size(); ++w)
      for (std::size_t i = 0; i + 1 < words[w].size(); ++i)
        pairs[(static_cast<std::uint64_t>(words[w][i]) << 32) | static_cast<std::uint32_t>(words[w][i + 1])] += freq[w];
    std::uint64_t best = 0;
    std::int64_t best_count = 1;  // a pair must occur at least twice to be worth a token
    for (const auto& [key, c] : pairs)
      if (c > best_count || (c == best_count && c > 1 && key < best)) {
        best = key;
        best_count = c;
      }
    if (best_count < 2) break;
    const auto a = static_cast<std::int32_t>(best >> 32), b = static_cast<std::int32_t>(best & 0xffffffffu);
    const std::string bytes = tokens[a] + tokens[b];
    auto [it, fresh] = by_bytes.emplace(bytes, static_cast<std::int32_t>(tokens.size()));
    if (fresh) tokens.push_back(bytes);
    merges.emplace_back(a, b);
    for (auto& word : words) {
      std::size_t out = 0;
      for (std::size_t i = 0; i < word.size(); ++out) {
        if (i + 1 < word.size() && word[i] == a && word[i + 1] == b) {
          word[out] = it->second;
          i += 2;
        } else {
          word[out] = word[i++];
        }
      }
      word.resize(out);
    }
  }
  return Tokenizer(std::move(tokens), std::move(merges), std::move(specials), PreTokenizer::r1hpc, "train_bpe");
}

}  // namespace r1
