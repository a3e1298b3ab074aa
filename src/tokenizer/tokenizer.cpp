#include "tokenizer/tokenizer.hpp"

#include <algorithm>
#include <limits>

#include "core/error.hpp"

namespace r1 {
namespace {

std::uint64_t pair_key(std::int32_t a, std::int32_t b) {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
}

}  // namespace

Tokenizer::Tokenizer(std::vector<std::string> tokens, std::vector<Merge> merges, std::vector<std::int32_t> specials, PreTokenizer rules,
                     std::string source)
    : tokens_(std::move(tokens)), merges_(std::move(merges)), specials_(std::move(specials)), rules_(rules), source_(std::move(source)) {
  const auto n = static_cast<std::int32_t>(tokens_.size());
  for (std::int32_t s : specials_) R1_REQUIRE(s >= 0 && s < n && !tokens_[s].empty(), source_, ": special token id ", s, " is not a token");
  std::stable_sort(specials_.begin(), specials_.end(), [&](auto a, auto b) { return tokens_[a].size() > tokens_[b].size(); });
  std::fill(std::begin(byte_id_), std::end(byte_id_), -1);
  std::unordered_map<std::string, std::int32_t> by_bytes;
  for (std::int32_t id = 0; id < n; ++id) {
    if (is_special(id)) continue;
    by_bytes.emplace(tokens_[id], id);
    if (tokens_[id].size() == 1) byte_id_[static_cast<unsigned char>(tokens_[id][0])] = id;
  }
  for (int b = 0; b < 256; ++b)
    R1_REQUIRE(byte_id_[b] >= 0, source_, ": not a byte-level vocabulary: byte 0x", std::hex, b, " has no token");
  for (std::size_t r = 0; r < merges_.size(); ++r) {
    const auto [a, b] = merges_[r];
    R1_REQUIRE(a >= 0 && a < n && b >= 0 && b < n, source_, ": merge ", r, " names a token id outside the vocabulary");
    const auto merged = by_bytes.find(tokens_[a] + tokens_[b]);
    R1_REQUIRE(merged != by_bytes.end(), source_, ": merge ", r, " makes a token that is not in the vocabulary");
    rank_.emplace(pair_key(a, b), std::pair{static_cast<std::int32_t>(r), merged->second});
  }
  const std::vector<std::string>& names = r1_special_tokens();
  std::int32_t* roles[] = {&ids_.eos, &ids_.pad, &ids_.think, &ids_.think_end, &ids_.answer, &ids_.answer_end, &ids_.user, &ids_.assistant};
  for (std::size_t k = 0; k < names.size(); ++k)
    for (std::int32_t s : specials_)
      if (tokens_[s] == names[k]) *roles[k] = s;
}

const std::string& Tokenizer::token(std::int32_t id) const {
  R1_REQUIRE(id >= 0 && id < vocab_size(), source_, ": token id ", id, " is outside the vocabulary of ", vocab_size());
  return tokens_[static_cast<std::size_t>(id)];
}

bool Tokenizer::is_special(std::int32_t id) const { return std::find(specials_.begin(), specials_.end(), id) != specials_.end(); }

std::int32_t Tokenizer::special_id(std::string_view text) const {
  for (std::int32_t s : specials_)
    if (tokens_[s] == text) return s;
  R1_FAIL(user, source_, ": the tokenizer has no special token ", text);
}

std::vector<std::int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<std::int32_t> out;
  out.reserve(text.size() / 2);
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size();) {
    std::int32_t hit = -1;
    for (std::int32_t s : specials_)
      if (text.substr(i).starts_with(tokens_[s])) {
        hit = s;
        break;
      }
    if (hit < 0) {
      ++i;
      continue;
    }
    for (std::string_view piece : pretokenize(text.substr(start, i - start), rules_)) encode_piece(piece, out);
    out.push_back(hit);
    i += tokens_[hit].size();
    start = i;
  }
  for (std::string_view piece : pretokenize(text.substr(start), rules_)) encode_piece(piece, out);
  return out;
}

// GPT-2's merge loop: repeatedly merge every occurrence (left to right) of the adjacent pair of best rank.
void Tokenizer::encode_piece(std::string_view piece, std::vector<std::int32_t>& out) const {
  std::vector<std::int32_t> sym;
  sym.reserve(piece.size());
  for (unsigned char c : piece) sym.push_back(byte_id_[c]);
  while (sym.size() > 1 && !rank_.empty()) {
    std::int32_t best = std::numeric_limits<std::int32_t>::max(), merged = -1;
    std::uint64_t best_key = 0;
    for (std::size_t i = 0; i + 1 < sym.size(); ++i) {
      const auto it = rank_.find(pair_key(sym[i], sym[i + 1]));
      if (it != rank_.end() && it->second.first < best) {
        best = it->second.first;
        merged = it->second.second;
        best_key = it->first;
      }
    }
    if (merged < 0) break;
    std::size_t w = 0;
    for (std::size_t i = 0; i < sym.size(); ++w) {
      if (i + 1 < sym.size() && pair_key(sym[i], sym[i + 1]) == best_key) {
        sym[w] = merged;
        i += 2;
      } else {
        sym[w] = sym[i++];
      }
    }
    sym.resize(w);
  }
  out.insert(out.end(), sym.begin(), sym.end());
}

std::string Tokenizer::decode(std::span<const std::int32_t> ids) const {
  std::string out;
  for (std::int32_t id : ids) out += token(id);
  return out;
}

Tokenizer byte_tokenizer() {
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.emplace_back(1, static_cast<char>(b));
  std::vector<std::int32_t> specials;
  for (const std::string& s : r1_special_tokens()) {
    specials.push_back(static_cast<std::int32_t>(tokens.size()));
    tokens.push_back(s);
  }
  return Tokenizer(std::move(tokens), {}, std::move(specials), PreTokenizer::r1hpc, "byte");
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& spec) {
  if (spec == "byte") return std::make_unique<Tokenizer>(byte_tokenizer());
  return std::make_unique<Tokenizer>(load_hf_tokenizer(spec));
}

}  // namespace r1
