// The synthetic reasoning world: seeded, verifiable problems (arithmetic, countdown, comparison, word
// problems) in English and Spanish with worked solutions at four difficulty levels, and the prompt
// templates of R1's phases.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace r1 {

enum class Language { en, es };
enum class ProblemKind { arithmetic, countdown, comparison, word_problem, external };  // external: loaded datasets
enum class Split { train, heldout };

const char* language_name(Language l);  // "en", "es"
const char* problem_kind_name(ProblemKind k);

// Difficulty levels 1..kWorldLevels. Level 1 is the world as first built (two to four steps, small
// numbers); each level up adds steps and larger numbers, and from level 3 countdown's worked solution checks
// a first attempt against the target and revises it (docs/pipeline.md, "Difficulty levels").
constexpr int kWorldLevels = 4;

struct Problem {
  std::int64_t id = 0;
  ProblemKind kind = ProblemKind::arithmetic;
  Language language = Language::en;
  int level = 1;
  std::string prompt;
  std::string answer;                       // countdown: one expression that reaches the target
  std::vector<std::string> solution_steps;  // worked solution, in the problem's language
  std::vector<std::int64_t> numbers;        // countdown: the numbers, each usable at most once
  std::string instance_key;                 // language-free content ("arithmetic:3 + 4 * 5"): the split's unit
};

// Relative weights of the kinds and of the levels (levels[i]: level i + 1), and the share of Spanish problems.
struct ProblemMix {
  double arithmetic = 1, countdown = 1, comparison = 1, word_problem = 1;
  double spanish = 0.5;
  std::vector<double> levels{1};
};

// The mix of the built-in tasks at the deck's `[data] synthetic_levels` (level weights).
ProblemMix problem_mix(const std::vector<std::int64_t>& level_weights);
// A problem's task name in evaluation tables: its kind, with "/L<level>" when the mix has several levels or
// another level than 1 ("countdown/L3").
std::string task_name(const Problem& p, const ProblemMix& mix);

// Problem i of a split is a function of (seed, split, i) only. Train slots draw from instance indices
// [0, 2^40), held-out ones from [2^40, 2^41); a problem belongs to the held-out split iff a hash of its
// instance_key is 0 mod 8, and each slot redraws until it lands in its own split, so no problem (in either
// language) is in both. Ids are the instance indices.
std::vector<Problem> generate_problems(const ProblemMix& mix, std::int64_t n, std::uint64_t seed, Split split);

// Number words: 0..99 ("twenty-one", "veintiuno"); larger numbers as digits.
std::string number_words(std::int64_t n, Language l);

// R1-Zero's training template (DeepSeek-R1 paper, Table 1) around a question: the text before it, the
// question, the text after it.
extern const std::string_view kR1ZeroBefore, kR1ZeroAfter;
std::string r1_zero_prompt(std::string_view question);
// The chat template of the SFT and RL phases: <|user|>question<|assistant|>.
std::string chat_prompt(std::string_view question);
// The cold-start / SFT target: "<think>step step ...</think><answer>X</answer>".
std::string worked_solution(const Problem& p);
// The same answer without reasoning: "<think></think><answer>X</answer>" (well formatted, empty thought).
std::string direct_answer(const Problem& p);

}  // namespace r1
