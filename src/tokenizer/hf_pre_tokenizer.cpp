#include "tokenizer/hf_pre_tokenizer.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "tokenizer/utf8.hpp"

#include "core/error.hpp"

namespace r1 {

const char* const kGpt2Regex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

using nlohmann::json;
using Range = std::pair<std::size_t, std::size_t>;

struct Span {
  std::size_t begin, end;
  bool match;
};

// Matches of a literal (non-overlapping, left to right), as Hugging Face's String pattern.
void find_literal(std::string_view text, const std::string& literal, std::vector<Range>& out) {
  for (std::size_t at = 0, hit; (hit = text.find(literal, at)) != std::string_view::npos; at = hit + literal.size())
    out.emplace_back(hit, hit + literal.size());
}

// The text as alternating non-match / match spans (empty ones left out), matches flipped when inverted.
void spans(std::string_view text, const std::vector<Range>& matches, bool invert, std::vector<Span>& s) {
  s.clear();
  std::size_t at = 0;
  for (const auto& [b, e] : matches) {
    if (b > at) s.push_back({at, b, invert});
    s.push_back({b, e, !invert});
    at = e;
  }
  if (at < text.size()) s.push_back({at, text.size(), invert});
}

}  // namespace

HfPreTokenizer HfPreTokenizer::from_json(const json& j, const std::string& where) {
  HfPreTokenizer p;
  if (!j.is_null()) p.parse(j, where);
  return p;
}

void HfPreTokenizer::parse(const json& j, const std::string& where) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) R1_FAIL(user, where, ": expected an object with a string \"type\"");
  const std::string type = j["type"].get<std::string>();
  Step s{};
  if (type == "Sequence") {
    const json& list = j.value("pretokenizers", json::array());
    if (!list.is_array()) R1_FAIL(user, where, ".pretokenizers: expected an array");
    for (std::size_t k = 0; k < list.size(); ++k) parse(list[k], detail::concat(where, ".pretokenizers[", k, "]"));
    return;
  } else if (type == "Split") {
    s.kind = Kind::split;
    const json& pattern = j.at("pattern");
    if (pattern.contains("Regex")) {
      s.regex = std::make_shared<const Regex>(pattern["Regex"].get<std::string>(), where + ".pattern.Regex");
    } else if (pattern.contains("String") && !pattern["String"].get<std::string>().empty()) {
      s.literal = pattern["String"].get<std::string>();
    } else {
      R1_FAIL(user, where, ".pattern: expected {\"Regex\": ...} or a non-empty {\"String\": ...}");
    }
    static const std::pair<const char*, Behavior> behaviors[] = {{"Removed", Behavior::removed},
                                                                 {"Isolated", Behavior::isolated},
                                                                 {"MergedWithPrevious", Behavior::merged_with_previous},
                                                                 {"MergedWithNext", Behavior::merged_with_next},
                                                                 {"Contiguous", Behavior::contiguous}};
    const std::string b = j.at("behavior").get<std::string>();
    bool known = false;
    for (const auto& [name, value] : behaviors)
      if (b == name) s.behavior = value, known = true;
    if (!known) R1_FAIL(user, where, ".behavior: ", b, " is not a Split behavior");
    s.invert = j.value("invert", false);
  } else if (type == "ByteLevel") {
    s.kind = Kind::byte_level;
    s.add_prefix_space = j.value("add_prefix_space", true);
    if (j.value("use_regex", true)) s.regex = std::make_shared<const Regex>(kGpt2Regex, where);
    byte_level_ = true;
  } else if (type == "Digits") {
    s.kind = Kind::split;
    s.regex = std::make_shared<const Regex>(R"(\p{N})", where);
    s.behavior = j.value("individual_digits", false) ? Behavior::isolated : Behavior::contiguous;
  } else if (type == "Metaspace") {
    s.kind = Kind::metaspace;
    s.literal = j.value("replacement", "\xE2\x96\x81");
    const std::string scheme = j.contains("prepend_scheme") ? j["prepend_scheme"].get<std::string>()
                               : j.value("add_prefix_space", true) ? "always" : "never";
    if (scheme == "always") s.prepend = Prepend::always;
    else if (scheme == "first") s.prepend = Prepend::first;
    else if (scheme == "never") s.prepend = Prepend::never;
    else R1_FAIL(user, where, ".prepend_scheme: ", scheme, " is not always, first or never");
    s.split = j.value("split", true);
  } else {
    R1_FAIL(user, where, ": pre-tokenizer type ", type, " is not supported (r1hpc reads Sequence, Split, ByteLevel, Digits, Metaspace)");
  }
  steps_.push_back(std::move(s));
}

namespace {

// The ranges a split keeps from the spans of a piece, by behavior (Hugging Face's SplitDelimiterBehavior).
void kept_ranges(const std::vector<Span>& s, HfPreTokenizer::Behavior behavior, std::vector<Range>& kept) {
  using B = HfPreTokenizer::Behavior;
  kept.clear();
  bool previous_match = false;
  if (behavior == B::merged_with_next) {  // fold from the right: a match joins the piece after it
    for (auto it = s.rbegin(); it != s.rend(); ++it) {
      if (it->match && !previous_match && !kept.empty()) kept.back().first = it->begin;
      else kept.emplace_back(it->begin, it->end);
      previous_match = it->match;
    }
    std::reverse(kept.begin(), kept.end());
    return;
  }
  for (const Span& x : s) {
    if (behavior == B::removed) {
      if (!x.match) kept.emplace_back(x.begin, x.end);
    } else if ((behavior == B::merged_with_previous && x.match && !previous_match && !kept.empty()) ||
               (behavior == B::contiguous && x.match && previous_match)) {
      kept.back().second = x.end;
    } else {
      kept.emplace_back(x.begin, x.end);
    }
    previous_match = x.match;
  }
}

}  // namespace

// Pieces are views: into the section, or into arena where a step rewrites the text (a prefix space,
// Metaspace's replacement), so splitting allocates only for rewritten pieces.
void HfPreTokenizer::apply(const Step& step, Piece piece, std::deque<std::string>& arena, std::vector<Piece>& out) {
  Behavior behavior = step.behavior;
  bool invert = step.invert;
  if (step.kind == Kind::byte_level) {
    if (step.add_prefix_space && !piece.text.starts_with(' ')) {
      std::string& spaced = arena.emplace_back(1, ' ');
      piece.text = spaced.append(piece.text);
    }
    if (!step.regex) {
      out.push_back(piece);
      return;
    }
  } else if (step.kind == Kind::metaspace) {
    std::string t = utf8::replace_all(piece.text, " ", step.literal);
    const bool prefix = !t.starts_with(step.literal) && (step.prepend == Prepend::always || (step.prepend == Prepend::first && piece.at_start));
    if (prefix) t.insert(0, step.literal);
    piece.text = arena.emplace_back(std::move(t));
    if (!step.split) {
      out.push_back(piece);
      return;
    }
    behavior = Behavior::merged_with_next;
    invert = false;
  }
  thread_local std::vector<Range> matches, kept;
  thread_local std::vector<Span> parts;
  matches.clear();
  if (step.regex) step.regex->find_all(piece.text, matches);
  else find_literal(piece.text, step.literal, matches);
  spans(piece.text, matches, invert, parts);
  kept_ranges(parts, behavior, kept);
  for (const auto& [b, e] : kept) out.push_back({piece.text.substr(b, e - b), piece.at_start && b == 0});
}

void HfPreTokenizer::split(std::string_view text, bool at_start, std::deque<std::string>& arena, std::vector<std::string_view>& out) const {
  thread_local std::vector<Piece> pieces, next;
  pieces.assign(1, {text, at_start});
  for (const Step& step : steps_) {
    next.clear();
    for (const Piece& p : pieces) apply(step, p, arena, next);
    pieces.swap(next);
  }
  for (const Piece& p : pieces)
    if (!p.text.empty()) out.push_back(p.text);
}

}  // namespace r1
