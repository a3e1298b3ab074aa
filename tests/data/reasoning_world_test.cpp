#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "data/reasoning_world.hpp"
#include "core/error.hpp"
#include "data/world_text.hpp"

using namespace r1;

namespace {

// An evaluator written independently of data/exact_math: shunting-yard over long doubles.
long double eval_infix(const std::string& s) {
  std::vector<long double> vals;
  std::vector<char> ops;
  auto prec = [](char op) { return op == '+' || op == '-' ? 1 : op == '*' || op == '/' ? 2 : 0; };
  auto reduce = [&] {
    const long double b = vals.back();
    vals.pop_back();
    long double& a = vals.back();
    const char op = ops.back();
    ops.pop_back();
    a = op == '+' ? a + b : op == '-' ? a - b : op == '*' ? a * b : a / b;
  };
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == ' ') continue;
    if (std::isdigit(static_cast<unsigned char>(c))) {
      long double v = 0;
      while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) v = v * 10 + (s[i++] - '0');
      --i;
      vals.push_back(v);
    } else if (c == '(') {
      ops.push_back(c);
    } else if (c == ')') {
      while (ops.back() != '(') reduce();
      ops.pop_back();
    } else {
      while (!ops.empty() && prec(ops.back()) >= prec(c)) reduce();
      ops.push_back(c);
    }
  }
  while (!ops.empty()) reduce();
  return vals.back();
}

std::vector<long long> ints_in(const std::string& s) {
  std::vector<long long> out;
  const std::regex num(R"(\d+)");
  for (auto it = std::sregex_iterator(s.begin(), s.end(), num); it != std::sregex_iterator(); ++it) out.push_back(std::stoll(it->str()));
  return out;
}

// Can some +-*/ expression over a subset of values (each once) make target? Brute force over pairs.
bool reachable(std::vector<long double> values, long double target) {
  for (long double v : values)
    if (std::fabs(v - target) < 1e-9) return true;
  for (std::size_t i = 0; i < values.size(); ++i)
    for (std::size_t j = 0; j < values.size(); ++j) {
      if (i == j) continue;
      std::vector<long double> rest;
      for (std::size_t k = 0; k < values.size(); ++k)
        if (k != i && k != j) rest.push_back(values[k]);
      const long double a = values[i], b = values[j];
      for (long double r : {a + b, a - b, a * b, b != 0 ? a / b : NAN}) {
        if (std::isnan(r)) continue;
        rest.push_back(r);
        if (reachable(rest, target)) return true;
        rest.pop_back();
      }
    }
  return false;
}

long double number_value(const std::string& s) {
  const auto slash = s.find('/');
  return slash == std::string::npos ? std::stold(s) : std::stold(s.substr(0, slash)) / std::stold(s.substr(slash + 1));
}

// Every "a <op> b is c" / "a + b = c" claim in a solution is true arithmetic.
void check_step_claims(const Problem& p) {
  static const std::regex spoken(R"((\d+) (plus|minus|times|divided by|más|menos|por|dividido entre) (\d+) (is|es) (\d+))");
  static const std::regex written(R"((\d+) ([-+]) (\d+) = (\d+))");
  static const std::map<std::string, char> ops{{"plus", '+'}, {"más", '+'}, {"minus", '-'}, {"menos", '-'}, {"times", '*'},
                                               {"por", '*'}, {"divided by", '/'}, {"dividido entre", '/'}};
  for (const std::string& step : p.solution_steps) {
    for (auto it = std::sregex_iterator(step.begin(), step.end(), spoken); it != std::sregex_iterator(); ++it) {
      const auto& m = *it;
      const std::string expr = m[1].str() + " " + ops.at(m[2].str()) + " " + m[3].str();
      EXPECT_EQ(eval_infix(expr), std::stold(m[5].str())) << step;
    }
    for (auto it = std::sregex_iterator(step.begin(), step.end(), written); it != std::sregex_iterator(); ++it)
      EXPECT_EQ(eval_infix((*it)[1].str() + (*it)[2].str() + (*it)[3].str()), std::stold((*it)[4].str())) << step;
  }
}

void check_answer(const Problem& p) {
  SCOPED_TRACE(p.prompt);
  check_step_claims(p);
  switch (p.kind) {
    case ProblemKind::arithmetic:
      EXPECT_EQ(eval_infix(p.instance_key.substr(std::string("arithmetic:").size())), std::stold(p.answer));
      break;
    case ProblemKind::countdown: {
      const std::vector<long long> in_prompt = ints_in(p.prompt);
      const long double target = static_cast<long double>(in_prompt.back());
      EXPECT_NEAR(eval_infix(p.answer), target, 1e-9);
      std::multiset<long long> given(in_prompt.begin(), in_prompt.end() - 1);
      for (long long v : ints_in(p.answer)) {
        ASSERT_TRUE(given.count(v)) << "answer uses " << v << " more often than given";
        given.erase(given.find(v));
      }
      // The answer's check above already proves the target reachable; the brute force (exponential in the
      // count) confirms it independently of the answer where it is cheap.
      std::vector<long double> values(in_prompt.begin(), in_prompt.end() - 1);
      if (values.size() <= 4) {
        EXPECT_TRUE(reachable(values, target));
      }
      break;
    }
    case ProblemKind::comparison: {
      const auto colon = p.prompt.find(':');
      if (p.prompt.find("rden") != std::string::npos || p.prompt.find("Order") != std::string::npos) {
        std::vector<long long> v = ints_in(p.prompt.substr(colon));
        std::sort(v.begin(), v.end());
        EXPECT_EQ(ints_in(p.answer), v);
      } else {
        static const std::regex pair(R"(([0-9./]+) (or|o) ([0-9./]+)\?)");
        std::smatch m;
        ASSERT_TRUE(std::regex_search(p.prompt, m, pair));
        const std::string a = m[1], b = m[3];
        EXPECT_EQ(p.answer, number_value(a) > number_value(b) ? a : b);
      }
      break;
    }
    default: {  // the last claim computed in the solution is the answer
      const std::vector<long long> last = ints_in(p.solution_steps.back());
      EXPECT_NE(std::find(last.begin(), last.end(), std::stoll(p.answer)), last.end());
    }
  }
}

}  // namespace

TEST(ReasoningWorld, SameSeedSameProblemsOtherSeedOthers) {
  const auto a = generate_problems({}, 50, 3, Split::train), b = generate_problems({}, 50, 3, Split::train);
  const auto c = generate_problems({}, 50, 4, Split::train);
  ASSERT_EQ(a.size(), 50u);
  int same = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].prompt, b[i].prompt);
    EXPECT_EQ(a[i].answer, b[i].answer);
    EXPECT_EQ(a[i].id, static_cast<std::int64_t>(i));
    same += a[i].prompt == c[i].prompt;
  }
  EXPECT_LT(same, 5);
  // Problem i does not depend on how many are generated.
  EXPECT_EQ(generate_problems({}, 10, 3, Split::train).back().prompt, a[9].prompt);
}

TEST(ReasoningWorld, EveryAnswerIsVerifiedIndependently) {
  for (const Problem& p : generate_problems({}, 1500, 11, Split::train)) check_answer(p);
  for (const Problem& p : generate_problems({}, 300, 11, Split::heldout)) check_answer(p);
}

TEST(ReasoningWorld, SplitsShareNoProblemInstance) {
  const auto train = generate_problems({}, 4000, 5, Split::train), held = generate_problems({}, 600, 5, Split::heldout);
  std::set<std::string> train_keys;
  std::set<std::int64_t> train_ids;
  for (const Problem& p : train) {
    train_keys.insert(p.instance_key);
    train_ids.insert(p.id);
  }
  for (const Problem& p : held) {
    EXPECT_FALSE(train_keys.count(p.instance_key)) << p.instance_key;
    EXPECT_FALSE(train_ids.count(p.id));
    EXPECT_GE(p.id, std::int64_t{1} << 40);
  }
}

TEST(ReasoningWorld, MixAndLanguagesFollowTheirWeights) {
  ProblemMix only_countdown{.arithmetic = 0, .countdown = 1, .comparison = 0, .word_problem = 0, .spanish = 1};
  for (const Problem& p : generate_problems(only_countdown, 30, 2, Split::train)) {
    EXPECT_EQ(p.kind, ProblemKind::countdown);
    EXPECT_EQ(p.language, Language::es);
  }
  std::map<ProblemKind, int> kinds;
  std::map<Language, int> langs;
  for (const Problem& p : generate_problems({}, 800, 2, Split::train)) {
    ++kinds[p.kind];
    ++langs[p.language];
  }
  for (auto k : {ProblemKind::arithmetic, ProblemKind::countdown, ProblemKind::comparison, ProblemKind::word_problem})
    EXPECT_GT(kinds[k], 120) << problem_kind_name(k);
  EXPECT_GT(langs[Language::en], 320);
  EXPECT_GT(langs[Language::es], 320);
}

TEST(ReasoningWorld, BothLanguagesUseTheirOwnVocabulary) {
  for (const Problem& p : generate_problems({}, 400, 9, Split::train)) {
    std::string all = p.prompt;
    for (const std::string& s : p.solution_steps) all += " " + s;
    const bool spanish = p.language == Language::es;
    // Whole words only; std::regex's \b would split "dieciséis" at the accent.
    static const std::regex es_words(R"((^|[ ,.])(es|el|la|y|con|cada|tiene|menor|mayor|Primero|Calcula|Usando|Ordena)(?=[ ,.:?]|$)|¿)");
    static const std::regex en_words(R"((^|[ ,.])(is|the|and|with|each|has|First|Compute|Using|Order|Which|What)(?=[ ,.:?]|$))");
    EXPECT_EQ(std::regex_search(all, es_words), spanish) << all;
    EXPECT_EQ(std::regex_search(all, en_words), !spanish) << all;
    if (p.kind == ProblemKind::arithmetic) {
      EXPECT_TRUE(p.solution_steps[0].starts_with(spanish ? "Primero, " : "First, "));
    }
  }
  EXPECT_EQ(number_words(21, Language::en), "twenty-one");
  EXPECT_EQ(number_words(21, Language::es), "veintiuno");
  EXPECT_EQ(number_words(35, Language::es), "treinta y cinco");
  EXPECT_EQ(number_words(16, Language::es), "dieciséis");
  EXPECT_EQ(number_words(120, Language::es), "120");
}

TEST(ReasoningWorld, TemplatesWrapQuestionsAndSolutions) {
  const std::string z = r1_zero_prompt("What is 2 + 3?");
  EXPECT_TRUE(z.starts_with("A conversation between User and Assistant."));
  EXPECT_TRUE(z.ends_with("User: What is 2 + 3?. Assistant:"));
  EXPECT_EQ(chat_prompt("Hi"), "<|user|>Hi<|assistant|>");
  Problem p;
  p.solution_steps = {"First, 2 plus 3 is 5."};
  p.answer = "5";
  EXPECT_EQ(worked_solution(p), "<think>First, 2 plus 3 is 5.</think><answer>5</answer>");
}

TEST(WorldText, FactsTranslationsGreetingsAndPreferencesInBothLanguages) {
  std::set<std::string> kinds;
  std::set<Language> langs;
  for (const TextExample& t : generate_text_examples(200, 1)) {
    kinds.insert(t.kind);
    langs.insert(t.language);
    EXPECT_FALSE(t.prompt.empty());
    EXPECT_FALSE(t.response.empty());
    if (t.kind == "translation" && t.language == Language::es) {
      EXPECT_TRUE(t.response.starts_with("El ") || t.response.starts_with("La "));
    }
  }
  EXPECT_EQ(kinds, (std::set<std::string>{"fact", "translation", "greeting"}));
  EXPECT_EQ(langs.size(), 2u);
  std::set<PreferenceKind> pkinds;
  for (const PreferencePair& p : generate_preference_pairs(100, 1)) {
    pkinds.insert(p.kind);
    EXPECT_NE(p.chosen, p.rejected);
  }
  EXPECT_EQ(pkinds.size(), 2u);
  EXPECT_EQ(generate_text_examples(20, 1).back().prompt, generate_text_examples(20, 1).back().prompt);
}

// The default preference pairs (surface pairs, no label noise) are pinned: the reward-model and RL-for-all
// decks written before the content pairs train on exactly the pairs they did.
TEST(ReasoningWorld, SurfacePreferencePairsAreUnchanged) {
  std::uint64_t h = 1469598103934665603ull;
  const auto mix = [&](const std::string& s) {
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  };
  for (const PreferencePair& p : generate_preference_pairs(500, 11)) {
    mix(p.prompt);
    mix(p.chosen);
    mix(p.rejected);
    mix(p.kind == PreferenceKind::helpfulness ? "h" : "s");
    mix(language_name(p.language));
  }
  EXPECT_EQ(h, 4591546530455611779ull);
}

std::vector<std::string> words(const std::string& s) {
  std::vector<std::string> w;
  std::istringstream in(s);
  for (std::string x; in >> x;) w.push_back(x);
  return w;
}

// Content pairs: the two responses share their template and differ in what they say. A fact or translation
// pair differs in one word; a language pair holds the same answer in both languages, the chosen one in the
// prompt's; a harmlessness pair shares its opening. Every kind appears in both languages.
TEST(ReasoningWorld, ContentPreferencePairsDifferInContentNotSurface) {
  const std::vector<PreferencePair> pairs = generate_preference_pairs(2000, 5, {.content = true});
  std::map<std::string, int> kinds;
  for (const PreferencePair& p : pairs) {
    SCOPED_TRACE(p.prompt + " | " + p.chosen + " | " + p.rejected);
    ASSERT_NE(p.chosen, p.rejected);
    EXPECT_FALSE(p.swapped);
    const std::vector<std::string> c = words(p.chosen), r = words(p.rejected);
    const bool spanish_prompt = p.prompt.starts_with("¿") || p.prompt.starts_with("Traduce") || p.prompt.starts_with("El ") ||
                                p.prompt.starts_with("Un ") || p.prompt.starts_with("Mi ");
    EXPECT_EQ(p.language == Language::es, spanish_prompt);
    const auto english = [](const std::string& t) { return t.starts_with("The "); };
    if (p.kind == PreferenceKind::harmlessness) {
      const std::size_t opening = p.chosen.find(':');
      ASSERT_NE(opening, std::string::npos);
      EXPECT_EQ(p.chosen.substr(0, opening), p.rejected.substr(0, opening));
      ++kinds[std::string("harmlessness/") + language_name(p.language)];
    } else if (english(p.chosen) != english(p.rejected)) {  // the language pair: the chosen one in the prompt's
      EXPECT_EQ(english(p.chosen), p.language == Language::en);
      EXPECT_TRUE(p.chosen.find("capital") != std::string::npos && p.rejected.find("capital") != std::string::npos);
      ++kinds[std::string("language/") + language_name(p.language)];
    } else {  // a fact or translation: one word changed (with the Spanish article and adjective agreeing with a
              // new noun; a city may be two or three words)
      std::size_t same = 0;
      if (c.size() == r.size()) {
        for (std::size_t i = 0; i < c.size(); ++i) same += c[i] == r[i] ? 1 : 0;
      } else {
        while (same < std::min(c.size(), r.size()) && c[same] == r[same]) ++same;
      }
      EXPECT_LT(same, std::max(c.size(), r.size()));
      EXPECT_GE(same + 3, std::max(c.size(), r.size()));
      ++kinds[std::string("content/") + language_name(p.language)];
    }
  }
  EXPECT_EQ(kinds.size(), 6u);
  for (const auto& [kind, count] : kinds) EXPECT_GT(count, 100) << kind;
}

// Label noise swaps chosen and rejected of a share of the pairs and leaves the pairs themselves as they were.
TEST(ReasoningWorld, PreferenceLabelNoiseSwapsItsShare) {
  for (bool content : {false, true}) {
    const std::vector<PreferencePair> clean = generate_preference_pairs(4000, 9, {.content = content});
    const std::vector<PreferencePair> noisy = generate_preference_pairs(4000, 9, {.content = content, .label_noise = 0.2});
    std::int64_t swapped = 0;
    for (std::size_t i = 0; i < clean.size(); ++i) {
      EXPECT_EQ(noisy[i].prompt, clean[i].prompt);
      if (noisy[i].swapped) {
        ++swapped;
        EXPECT_EQ(noisy[i].chosen, clean[i].rejected);
        EXPECT_EQ(noisy[i].rejected, clean[i].chosen);
      } else {
        EXPECT_EQ(noisy[i].chosen, clean[i].chosen);
      }
    }
    EXPECT_NEAR(static_cast<double>(swapped) / 4000, 0.2, 4 * std::sqrt(0.2 * 0.8 / 4000)) << "content " << content;
  }
}

// The default world (level 1 only) is pinned: decks written before difficulty levels train, sample and
// evaluate on exactly the problems they did. The hash covers prompt, answer and worked solution.
TEST(ReasoningWorld, LevelOneWorldIsUnchanged) {
  std::uint64_t h = 1469598103934665603ull;
  const auto mix = [&](const std::string& s) {
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  };
  for (Split split : {Split::train, Split::heldout})
    for (const Problem& p : generate_problems({}, 400, 7, split)) {
      mix(p.prompt);
      mix(worked_solution(p));
      mix(p.instance_key);
    }
  EXPECT_EQ(h, 7606742678762549178ull);
}

ProblemMix only_level(int level) {
  ProblemMix mix;
  mix.levels.assign(static_cast<std::size_t>(level), 0.0);
  mix.levels.back() = 1;
  return mix;
}

TEST(ReasoningWorld, EveryLevelsAnswersAreVerifiedIndependently) {
  for (int level = 2; level <= kWorldLevels; ++level) {
    SCOPED_TRACE(level);
    for (const Problem& p : generate_problems(only_level(level), 600, 13, Split::train)) {
      EXPECT_EQ(p.level, level);
      check_answer(p);
    }
    for (const Problem& p : generate_problems(only_level(level), 150, 13, Split::heldout)) check_answer(p);
  }
}

// Each level up takes more reasoning: per kind, more worked steps and longer worked solutions on average,
// and from level 3 countdown's solutions check a first attempt and revise it.
TEST(ReasoningWorld, LevelsGrowTheReasoningTheyNeed) {
  std::map<std::pair<ProblemKind, int>, std::pair<double, double>> steps_chars;  // sums
  std::map<std::pair<ProblemKind, int>, int> count;
  for (int level = 1; level <= kWorldLevels; ++level)
    for (const Problem& p : generate_problems(only_level(level), 800, 17, Split::train)) {
      auto& [steps, chars] = steps_chars[{p.kind, level}];
      steps += static_cast<double>(p.solution_steps.size());
      chars += static_cast<double>(worked_solution(p).size());
      ++count[{p.kind, level}];
      if (p.kind == ProblemKind::countdown) {
        const bool revised = worked_solution(p).find(p.language == Language::en ? "Check: " : "Comprobamos: ") != std::string::npos;
        if (level < 3) EXPECT_FALSE(revised) << p.prompt;
      }
    }
  for (auto kind : {ProblemKind::arithmetic, ProblemKind::countdown, ProblemKind::comparison, ProblemKind::word_problem})
    for (int level = 2; level <= kWorldLevels; ++level) {
      SCOPED_TRACE(std::string(problem_kind_name(kind)) + " level " + std::to_string(level));
      const auto mean = [&](int l) {
        const auto& [s, c] = steps_chars[{kind, l}];
        const double n = count[{kind, l}];
        return std::pair{s / n, c / n};
      };
      ASSERT_GT((count[{kind, level}]), 100);
      // Comparison's harder levels are harder in kind (cross-multiplication, unequal decimals), with as many steps.
      if (kind != ProblemKind::comparison) {
        EXPECT_GT(mean(level).first, mean(level - 1).first);
      }
      EXPECT_GT(mean(level).second, mean(level - 1).second);
    }
  int revised = 0;
  for (const Problem& p : generate_problems(only_level(3), 400, 17, Split::train))
    revised += p.kind == ProblemKind::countdown && worked_solution(p).find("</think>") > worked_solution(p).find(
                                                                                           p.language == Language::en ? "Check: " : "Comprobamos: ");
  EXPECT_GT(revised, 50);
}

TEST(ReasoningWorld, LevelMixFollowsItsWeightsAndNamesTasks) {
  ProblemMix mix;
  mix.levels = {1, 0, 3};
  std::map<int, int> levels;
  for (const Problem& p : generate_problems(mix, 800, 3, Split::train)) ++levels[p.level];
  EXPECT_EQ(levels.count(2), 0u);
  EXPECT_GT(levels[1], 120);
  EXPECT_GT(levels[3], 3 * levels[1] - 150);
  // The kind and language of slot i do not depend on the level weights.
  const auto a = generate_problems({}, 100, 3, Split::train), b = generate_problems(mix, 100, 3, Split::train);
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].kind, b[i].kind);
    EXPECT_EQ(a[i].language, b[i].language);
    if (b[i].level == 1) {
      EXPECT_EQ(a[i].prompt, b[i].prompt);
    }
  }
  Problem p;
  p.kind = ProblemKind::countdown;
  p.level = 3;
  EXPECT_EQ(task_name(p, mix), "countdown/L3");
  p.level = 1;
  EXPECT_EQ(task_name(p, ProblemMix{}), "countdown");
  EXPECT_EQ(problem_mix({0, 0, 0, 2}).levels, (std::vector<double>{0, 0, 0, 2}));
  EXPECT_THROW(generate_problems(problem_mix({1, 1, 1, 1, 1}), 1, 3, Split::train), Error);
  EXPECT_THROW(generate_problems(problem_mix({0, 0}), 1, 3, Split::train), Error);
}

TEST(ReasoningWorld, SplitsShareNoProblemInstanceAtAnyLevel) {
  ProblemMix mix;
  mix.levels = {1, 1, 1, 1};
  const auto train = generate_problems(mix, 3000, 5, Split::train), held = generate_problems(mix, 500, 5, Split::heldout);
  std::set<std::string> keys;
  for (const Problem& p : train) keys.insert(p.instance_key);
  for (const Problem& p : held) EXPECT_FALSE(keys.count(p.instance_key)) << p.instance_key;
}
