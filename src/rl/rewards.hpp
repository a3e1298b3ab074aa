// Rule-based rewards of R1's reasoning RL: accuracy, format, language consistency, overlong penalty, and
// their weighted sum. Completions are decoded text without the end-of-sequence token.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "data/reasoning_world.hpp"

namespace r1 {

// The final answer: the content of the last <answer>...</answer> (its \boxed{} content if it holds one),
// else the last \boxed{...}; nullopt when there is neither.
std::optional<std::string> extract_answer(std::string_view completion);

// Whether got answers want, by the MATH / GSM8K checker of rl/math_answer.hpp (numbers by value, \frac and
// decimals, percentages, units and text, intervals, sets, equations, equivalent expressions); its verdicts
// follow PyPI math-verify's.
bool answers_match(std::string_view got, std::string_view want);

// 1 when the extracted answer is right, else 0. Countdown: the answer is an expression (an "= target"
// tail is allowed) that equals the target and uses each given number at most once.
double accuracy_reward(std::string_view completion, const Problem& p);

// 1 when the completion is exactly <think>...</think> then <answer>...</answer>, with only whitespace
// around them and each tag once; else 0.
double format_reward(std::string_view completion);

// Words of the reasoning (the <think> content, else the whole completion) classified by word lists
// (and Spanish letters á é í ó ú ñ ü ¿ ¡) as English or Spanish; words in neither list do not count.
struct LanguageCount {
  std::int64_t english = 0, spanish = 0;
  double fraction(Language target) const;  // target-language share of the classified words; 0 when none
};
LanguageCount count_language_words(std::string_view completion);
double language_consistency_reward(std::string_view completion, Language target);

// DAPO's soft overlong punishment: 0 up to max_tokens - buffer tokens, then falling linearly to -1 at
// max_tokens; -1 for a truncated completion (one that hit max_tokens without ending).
double overlong_penalty(std::int64_t tokens, bool truncated, std::int64_t max_tokens, std::int64_t buffer);

// The final summary of a response, what R1's helpfulness reward reads: the content of the last
// <answer>...</answer>; else the text after the last </think>; else the whole response; trimmed.
std::string final_summary(std::string_view completion);

// "wait", "verify", "check" (and their Spanish counterparts) as whole words, case-insensitive: the
// self-reflection the R1 paper watched grow during RL (a statistic of GRPO's rollouts, not a reward).
std::int64_t count_reflection_words(std::string_view text);

struct RewardWeights {
  double accuracy = 1, format = 1, language = 0, overlong = 0;
  std::int64_t max_tokens = 0, overlong_buffer = 0;  // overlong_penalty's limits (used when overlong != 0)
};
struct Rewards {
  double accuracy = 0, format = 0, language = 0, overlong = 0, total = 0;
};
Rewards score_completion(std::string_view completion, const Problem& p, const RewardWeights& w, std::int64_t tokens, bool truncated);

}  // namespace r1
