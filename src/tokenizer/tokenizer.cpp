#include "tokenizer/tokenizer.hpp"

#include <algorithm>
#include <atomic>
#include <deque>
#include <limits>

#include "core/error.hpp"
#include "tokenizer/byte_level.hpp"
#include "tokenizer/utf8.hpp"

namespace r1 {
namespace {

std::uint64_t pair_key(std::int32_t a, std::int32_t b) {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
}

}  // namespace

Tokenizer::Tokenizer(std::vector<std::string> tokens, std::vector<Merge> merges, std::vector<std::int32_t> specials, PreTokenizer rules,
                     std::string source)
    : tokens_(std::move(tokens)), merges_(std::move(merges)), rules_(rules), source_(std::move(source)) {
  R1_CHECK(rules != PreTokenizer::hf, "a tokenizer.json pipeline comes with its HfPipeline");
  std::vector<AddedToken> added;
  for (std::int32_t s : specials) {
    R1_REQUIRE(s >= 0 && s < vocab_size() && !tokens_[s].empty(), source_, ": special token id ", s, " is not a token");
    added.push_back({s, tokens_[s]});
  }
  added_ = AddedVocabulary(std::move(added));
  init();
}

Tokenizer::Tokenizer(std::vector<std::string> tokens, std::vector<Merge> merges, std::vector<AddedToken> added, std::shared_ptr<const HfPipeline> hf,
                     std::string source)
    : tokens_(std::move(tokens)), merges_(std::move(merges)), hf_(std::move(hf)), rules_(PreTokenizer::hf), source_(std::move(source)) {
  for (const AddedToken& a : added)
    R1_REQUIRE(a.id >= 0 && a.id < vocab_size() && !a.content.empty(), source_, ": added token id ", a.id, " is not a token");
  added_ = AddedVocabulary(std::move(added));
  byte_level_ = hf_->pre_tokenizer.byte_level();
  R1_REQUIRE(byte_level_ == hf_->decoder.byte_level(), source_,
             ": the pre-tokenizer and the decoder must both be byte-level (ByteLevel) or both not");
  init();
}

void Tokenizer::init() {
  static std::atomic<std::uint64_t> next_serial{1};
  serial_ = next_serial++;
  const auto n = static_cast<std::int32_t>(tokens_.size());
  is_added_.assign(tokens_.size(), false);
  for (const AddedToken& a : added_.tokens()) {
    specials_.push_back(a.id);
    is_added_[static_cast<std::size_t>(a.id)] = true;
    if (byte_level_ && hf_) {  // a ByteLevel decoder maps a token written wholly in its alphabet to bytes
      const auto bytes = from_byte_level(a.content);
      if (bytes && *bytes != a.content) special_decode_[a.id] = *bytes;
    }
  }
  std::fill(std::begin(byte_id_), std::end(byte_id_), -1);
  std::fill(std::begin(fallback_id_), std::end(fallback_id_), -1);
  for (std::int32_t id = 0; id < n; ++id) {
    if (is_special(id)) continue;
    by_text_.emplace(tokens_[id], id);
    if (tokens_[id].size() == 1) byte_id_[static_cast<unsigned char>(tokens_[id][0])] = id;
  }
  if (byte_level_) {
    for (int b = 0; b < 256; ++b)
      R1_REQUIRE(byte_id_[b] >= 0, source_, ": not a byte-level vocabulary: byte 0x", std::hex, b, " has no token");
  } else {
    static const char* hex = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) {
      const auto it = by_text_.find(std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">");
      if (it != by_text_.end()) fallback_id_[b] = it->second;
    }
    if (hf_->byte_fallback)
      for (int b = 0; b < 256; ++b) R1_REQUIRE(fallback_id_[b] >= 0, source_, ": model.byte_fallback is true but byte 0x", std::hex, b, " has no <0x..> token");
  }
  for (std::size_t r = 0; r < merges_.size(); ++r) {
    const auto [a, b] = merges_[r];
    R1_REQUIRE(a >= 0 && a < n && b >= 0 && b < n, source_, ": merge ", r, " names a token id outside the vocabulary");
    const auto merged = by_text_.find(tokens_[a] + tokens_[b]);
    R1_REQUIRE(merged != by_text_.end(), source_, ": merge ", r, " makes a token that is not in the vocabulary");
    rank_.emplace(pair_key(a, b), std::pair{static_cast<std::int32_t>(r), merged->second});
  }
  const std::vector<std::string>& names = r1_special_tokens();
  std::int32_t* roles[] = {&ids_.eos, &ids_.pad, &ids_.think, &ids_.think_end, &ids_.answer, &ids_.answer_end, &ids_.user, &ids_.assistant};
  for (std::size_t k = 0; k < names.size(); ++k)
    for (std::int32_t s : specials_)
      if (tokens_[s] == names[k]) *roles[k] = s;
}

void Tokenizer::set_sequence_ids(const SequenceIds& s) {
  for (std::int32_t id : {s.bos, s.eos}) R1_REQUIRE(id >= -1 && id < vocab_size(), source_, ": BOS/EOS id ", id, " is outside the vocabulary");
  sequence_ = s;
  if (ids_.bos < 0) ids_.bos = s.bos;
  if (ids_.eos < 0) ids_.eos = s.eos;
}

const std::string& Tokenizer::token(std::int32_t id) const {
  R1_REQUIRE(id >= 0 && id < vocab_size(), source_, ": token id ", id, " is outside the vocabulary of ", vocab_size());
  return tokens_[static_cast<std::size_t>(id)];
}

bool Tokenizer::is_special(std::int32_t id) const { return id >= 0 && id < vocab_size() && is_added_[static_cast<std::size_t>(id)]; }

std::int32_t Tokenizer::special_id(std::string_view text) const {
  for (std::int32_t s : specials_)
    if (tokens_[s] == text) return s;
  R1_FAIL(user, source_, ": the tokenizer has no special token ", text);
}

std::vector<std::int32_t> Tokenizer::encode(std::string_view text) const { return encode_within(text, nullptr); }

std::vector<std::int32_t> Tokenizer::encode_parts(std::span<const TextPart> parts) const {
  std::string text;
  AddedVocabulary::Ranges open;
  for (const TextPart& p : parts) {
    if (p.match_added && !open.empty() && open.back().second == text.size()) open.back().second += p.text.size();
    else if (p.match_added) open.emplace_back(text.size(), text.size() + p.text.size());
    text += p.text;
  }
  return encode_within(text, &open);
}

namespace {
// The ranges of `open` inside [b, e), shifted to start at b.
AddedVocabulary::Ranges clip(const AddedVocabulary::Ranges& open, std::size_t b, std::size_t e) {
  AddedVocabulary::Ranges out;
  for (const auto& [rb, re] : open)
    if (std::max(rb, b) < std::min(re, e)) out.emplace_back(std::max(rb, b) - b, std::min(re, e) - b);
  return out;
}
}  // namespace

// Hugging Face's order: added tokens matched in the raw text, the rest normalized, then the added tokens
// marked `normalized` matched in that, then pre-tokenizer and BPE on what is left. open (null: all of it):
// where in text added tokens may match.
std::vector<std::int32_t> Tokenizer::encode_within(std::string_view text, const AddedVocabulary::Ranges* open) const {
  std::vector<std::int32_t> out;
  out.reserve(text.size() / 2);
  std::vector<AddedVocabulary::Section> raw, normalized;
  added_.split(text, false, raw, open);
  for (const AddedVocabulary::Section& s : raw) {
    if (s.id >= 0) {
      out.push_back(s.id);
      continue;
    }
    if (!hf_ || (hf_->normalizer.empty() && !added_.any(true))) {
      pieces(s.text, s.offset == 0, out);
      continue;
    }
    const std::string norm = hf_->normalizer.apply(s.text);
    // Offsets into the normalized text are those of the raw text only when nothing was normalized; else a
    // section with closed text in it matches nothing.
    AddedVocabulary::Ranges sub;
    if (open) {
      sub = clip(*open, s.offset, s.offset + s.text.size());
      const bool all_open = sub.size() == 1 && sub[0].first == 0 && sub[0].second == s.text.size();
      if (!hf_->normalizer.empty()) sub = all_open ? AddedVocabulary::Ranges{{0, norm.size()}} : AddedVocabulary::Ranges{};
    }
    normalized.clear();
    added_.split(norm, true, normalized, open ? &sub : nullptr);
    for (const AddedVocabulary::Section& n : normalized) {
      if (n.id >= 0) out.push_back(n.id);
      else pieces(n.text, s.offset == 0 && n.offset == 0, out);
    }
  }
  return out;
}

std::vector<std::int32_t> Tokenizer::encode_sequence(std::string_view text) const {
  std::vector<std::int32_t> out;
  if (sequence_.add_bos && sequence_.bos >= 0) out.push_back(sequence_.bos);
  const std::vector<std::int32_t> body = encode(text);
  out.insert(out.end(), body.begin(), body.end());
  if (sequence_.add_eos && sequence_.eos >= 0) out.push_back(sequence_.eos);
  return out;
}

void Tokenizer::pieces(std::string_view section, bool at_start, std::vector<std::int32_t>& out) const {
  if (!hf_) {
    for (std::string_view piece : pretokenize(section, rules_)) encode_piece(piece, out);
    return;
  }
  thread_local std::deque<std::string> arena;
  thread_local std::vector<std::string_view> split;
  arena.clear();
  split.clear();
  hf_->pre_tokenizer.split(section, at_start, arena, split);
  for (std::string_view piece : split) encode_piece(piece, out);
}

// Per-thread memo of piece -> ids: text repeats its words, and the merge loop is the cost of encoding.
void Tokenizer::encode_piece(std::string_view piece, std::vector<std::int32_t>& out) const {
  struct Cache {
    std::uint64_t owner = 0;
    std::unordered_map<std::string, std::vector<std::int32_t>, StringHash, std::equal_to<>> ids;
  };
  thread_local Cache cache;
  if (cache.owner != serial_ || cache.ids.size() > (1u << 16)) {
    cache.ids.clear();
    cache.owner = serial_;
  }
  if (const auto it = cache.ids.find(piece); it != cache.ids.end()) {
    out.insert(out.end(), it->second.begin(), it->second.end());
    return;
  }
  std::vector<std::int32_t> sym;
  const auto whole = hf_ && hf_->ignore_merges ? by_text_.find(piece) : by_text_.end();
  if (whole != by_text_.end()) {
    sym.push_back(whole->second);
  } else {
    initial_symbols(piece, sym);
    merge(sym);
  }
  out.insert(out.end(), sym.begin(), sym.end());
  cache.ids.emplace(std::string(piece), std::move(sym));
}

// Byte-level: one symbol per byte. Otherwise one per character, or its <0xAB> byte tokens
// (byte_fallback), or unk (fuse_unk: one for a run); a character with none of these is dropped, as
// Hugging Face's BPE does. An invalid UTF-8 byte counts as a character of its own.
void Tokenizer::initial_symbols(std::string_view piece, std::vector<std::int32_t>& sym) const {
  if (byte_level_) {
    for (unsigned char c : piece) sym.push_back(byte_id_[c]);
    return;
  }
  bool last_unk = false;
  for (std::size_t i = 0; i < piece.size();) {
    const std::size_t len = std::max<std::size_t>(1, utf8::sequence_length(piece, i));
    const auto it = by_text_.find(piece.substr(i, len));
    const bool fallback = it == by_text_.end() && hf_->byte_fallback;
    if (it != by_text_.end()) {
      sym.push_back(it->second);
    } else if (fallback) {
      for (std::size_t k = i; k < i + len; ++k) sym.push_back(fallback_id_[static_cast<unsigned char>(piece[k])]);
    } else if (hf_->unk >= 0 && !(hf_->fuse_unk && last_unk)) {
      sym.push_back(hf_->unk);
    }
    last_unk = it == by_text_.end() && !fallback;
    i += len;
  }
}

// GPT-2's merge loop: repeatedly merge every occurrence (left to right) of the adjacent pair of best rank.
void Tokenizer::merge(std::vector<std::int32_t>& sym) const {
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
}

std::string Tokenizer::decode(std::span<const std::int32_t> ids) const {
  if (byte_level_) {
    std::string out;
    for (std::int32_t id : ids) {
      const auto it = special_decode_.empty() ? special_decode_.end() : special_decode_.find(id);
      out += it != special_decode_.end() ? it->second : token(id);
    }
    return out;
  }
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (std::int32_t id : ids) tokens.push_back(token(id));
  return hf_->decoder.decode(std::move(tokens));
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
