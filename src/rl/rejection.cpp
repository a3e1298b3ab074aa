#include "rl/rejection.hpp"

#include <cmath>
#include <set>
#include <sstream>

#include "core/error.hpp"
#include "rl/rewards.hpp"

namespace r1 {

const char* verdict_name(Verdict v) {
  switch (v) {
    case Verdict::accepted: return "accepted";
    case Verdict::truncated: return "truncated";
    case Verdict::overlong: return "overlong";
    case Verdict::malformed: return "malformed";
    case Verdict::incorrect: return "incorrect";
    case Verdict::mixed_language: return "mixed_language";
    case Verdict::repetitive: return "repetitive";
    case Verdict::duplicate: return "duplicate";
    case Verdict::surplus: return "surplus";
  }
  return "?";
}

double repeated_ngram_fraction(std::string_view text, std::int64_t n) {
  R1_REQUIRE(n >= 1, "n-grams need n >= 1, got ", n);
  std::vector<std::string> words;
  std::istringstream in{std::string(text)};
  for (std::string w; in >> w;) words.push_back(std::move(w));
  const auto un = static_cast<std::size_t>(n);
  if (words.size() < un) return 0;
  std::set<std::vector<std::string>> seen;
  std::size_t repeats = 0;
  const std::size_t total = words.size() - un + 1;
  for (std::size_t i = 0; i < total; ++i)
    if (!seen.emplace(words.begin() + static_cast<std::ptrdiff_t>(i), words.begin() + static_cast<std::ptrdiff_t>(i + un)).second)
      ++repeats;
  return static_cast<double>(repeats) / static_cast<double>(total);
}

namespace {

std::string trimmed(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string_view::npos ? std::string() : std::string(s.substr(b, e - b + 1));
}

Verdict judge_one(const Candidate& s, const Problem& p, const RejectionConfig& c) {
  if (s.truncated) return Verdict::truncated;
  if (c.max_tokens > 0 && s.tokens > c.max_tokens) return Verdict::overlong;
  if (format_reward(s.response) != 1) return Verdict::malformed;
  if (accuracy_reward(s.response, p) != 1) return Verdict::incorrect;
  if (c.drop_mixed_language) {
    const LanguageCount words = count_language_words(s.response);
    if (words.english + words.spanish > 0 && words.fraction(p.language) < c.min_language_consistency) return Verdict::mixed_language;
  }
  if (repeated_ngram_fraction(s.response, c.repeat_ngram) > c.max_repeat_fraction) return Verdict::repetitive;
  return Verdict::accepted;
}

}  // namespace

std::vector<Verdict> judge_samples(const std::vector<Candidate>& samples, const Problem& p, const RejectionConfig& c) {
  std::vector<Verdict> out;
  std::set<std::string> kept;
  for (const Candidate& s : samples) {
    Verdict v = judge_one(s, p, c);
    if (v == Verdict::accepted) {
      std::string key = trimmed(s.response);
      if (kept.count(key)) v = Verdict::duplicate;
      else if (static_cast<std::int64_t>(kept.size()) >= c.keep_per_prompt) v = Verdict::surplus;
      else kept.insert(std::move(key));
    }
    out.push_back(v);
  }
  return out;
}

std::int64_t non_reasoning_count(std::int64_t reasoning, double fraction) {
  R1_REQUIRE(fraction >= 0 && fraction < 1, "the non-reasoning fraction must be in [0, 1), got ", fraction);
  return std::llround(static_cast<double>(reasoning) * fraction / (1.0 - fraction));
}

std::string sft_row(std::string_view prompt, std::string_view response, const nlohmann::json& provenance) {
  const nlohmann::json j = {{"prompt", prompt}, {"response", response}, {"provenance", provenance}};
  // Invalid UTF-8 from a sampled byte sequence is replaced, not fatal: the row stays readable JSON.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace r1
