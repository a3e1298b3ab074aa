#include "data/reasoning_world.hpp"

#include <algorithm>
#include <functional>

#include "core/error.hpp"
#include "data/draw.hpp"
#include "data/world_kinds.hpp"

namespace r1 {

const char* language_name(Language l) { return l == Language::en ? "en" : "es"; }

const char* problem_kind_name(ProblemKind k) {
  switch (k) {
    case ProblemKind::arithmetic: return "arithmetic";
    case ProblemKind::countdown: return "countdown";
    case ProblemKind::comparison: return "comparison";
    case ProblemKind::word_problem: return "word_problem";
    case ProblemKind::external: return "external";
  }
  return "?";
}

std::string number_words(std::int64_t n, Language l) {
  static const std::vector<std::string> en{"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                                           "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
                                           "eighteen", "nineteen"};
  static const std::vector<std::string> en_tens{"", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"};
  static const std::vector<std::string> es{
      "cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve", "diez", "once", "doce", "trece", "catorce",
      "quince", "dieciséis", "diecisiete", "dieciocho", "diecinueve", "veinte", "veintiuno", "veintidós", "veintitrés",
      "veinticuatro", "veinticinco", "veintiséis", "veintisiete", "veintiocho", "veintinueve"};
  static const std::vector<std::string> es_tens{"", "", "", "treinta", "cuarenta", "cincuenta", "sesenta", "setenta", "ochenta", "noventa"};
  if (n < 0 || n > 99) return std::to_string(n);
  const auto i = static_cast<std::size_t>(n);
  if (l == Language::en) return n < 20 ? en[i] : en_tens[i / 10] + (i % 10 ? "-" + en[i % 10] : "");
  return n < 30 ? es[i] : es_tens[i / 10] + (i % 10 ? " y " + es[i % 10] : "");
}

namespace {

constexpr std::uint64_t kHeldoutBase = std::uint64_t{1} << 40;
constexpr std::uint32_t kKindStream = 0x3017d;  // which kind and language a slot gets
constexpr std::uint32_t kContentStream = 0x3017e;  // + attempt: the content of one try

std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

}  // namespace

std::vector<Problem> generate_problems(const ProblemMix& mix, std::int64_t n, std::uint64_t seed, Split split) {
  const double weights[] = {mix.arithmetic, mix.countdown, mix.comparison, mix.word_problem};
  double total = 0;
  for (double w : weights) {
    R1_REQUIRE(w >= 0, "problem mix weights must be non-negative");
    total += w;
  }
  R1_REQUIRE(total > 0, "the problem mix has no kind with a positive weight");
  R1_REQUIRE(n >= 0 && n < static_cast<std::int64_t>(kHeldoutBase), "cannot generate ", n, " problems");
  double level_total = 0;
  R1_REQUIRE(!mix.levels.empty() && mix.levels.size() <= static_cast<std::size_t>(kWorldLevels), "the problem mix has ",
             mix.levels.size(), " level weights; levels are 1..", kWorldLevels);
  for (double w : mix.levels) {
    R1_REQUIRE(w >= 0, "level weights must be non-negative");
    level_total += w;
  }
  R1_REQUIRE(level_total > 0, "the problem mix has no level with a positive weight");
  using Maker = std::function<Problem(Draw&, Language, int)>;
  const Maker makers[] = {make_arithmetic, make_countdown, make_comparison, make_word_problem};
  std::vector<Problem> out;
  out.reserve(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const std::uint64_t instance = (split == Split::train ? 0 : kHeldoutBase) + static_cast<std::uint64_t>(i);
    Draw slot(seed, kKindStream, instance);
    double u = slot.uniform() * total;
    int kind = 0;
    while (kind < 3 && (weights[kind] == 0 || u > weights[kind])) u -= weights[kind++];
    while (weights[kind] == 0) --kind;  // rounding at the top end: fall back to the last weighted kind
    const Language lang = slot.coin(mix.spanish) ? Language::es : Language::en;
    // Drawn after the kind and the language, so a one-level mix keeps the slots it had before levels.
    double v = slot.uniform() * level_total;
    std::size_t level = 0;
    while (level + 1 < mix.levels.size() && (mix.levels[level] == 0 || v > mix.levels[level])) v -= mix.levels[level++];
    while (mix.levels[level] == 0) --level;
    for (std::uint32_t attempt = 0;; ++attempt) {
      Draw d(seed, kContentStream + attempt, instance);
      Problem p = makers[kind](d, lang, static_cast<int>(level) + 1);
      p.level = static_cast<int>(level) + 1;
      if ((fnv1a(p.instance_key) % 8 == 0) != (split == Split::heldout)) continue;
      p.id = static_cast<std::int64_t>(instance);
      out.push_back(std::move(p));
      break;
    }
  }
  return out;
}

ProblemMix problem_mix(const std::vector<std::int64_t>& level_weights) {
  ProblemMix mix;
  mix.levels.assign(level_weights.begin(), level_weights.end());
  return mix;
}

std::string task_name(const Problem& p, const ProblemMix& mix) {
  if (mix.levels.size() == 1) return problem_kind_name(p.kind);
  return std::string(problem_kind_name(p.kind)) + "/L" + std::to_string(p.level);
}

const std::string_view kR1ZeroBefore =
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The assistant "
    "first thinks about the reasoning process in the mind and then provides the user with the answer. The reasoning "
    "process and answer are enclosed within <think> </think> and <answer> </answer> tags, respectively, i.e., <think> "
    "reasoning process here </think> <answer> answer here </answer>. User: ";
const std::string_view kR1ZeroAfter = ". Assistant:";

std::string r1_zero_prompt(std::string_view question) {
  return std::string(kR1ZeroBefore) + std::string(question) + std::string(kR1ZeroAfter);
}

std::string chat_prompt(std::string_view question) { return "<|user|>" + std::string(question) + "<|assistant|>"; }

std::string worked_solution(const Problem& p) {
  std::string think;
  for (const std::string& s : p.solution_steps) think += (think.empty() ? "" : " ") + s;
  return "<think>" + think + "</think><answer>" + p.answer + "</answer>";
}

std::string direct_answer(const Problem& p) { return "<think></think><answer>" + p.answer + "</answer>"; }

}  // namespace r1
