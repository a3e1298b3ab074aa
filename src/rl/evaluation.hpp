// Evaluation metrics of sampled completions (R1's protocol): the unbiased pass@k estimator, majority vote
// over extracted answers (cons@k), and per-task / overall aggregation of per-prompt results.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "data/reasoning_world.hpp"

namespace r1 {

// Chance that at least one of k samples drawn without replacement from n (c of them correct) is correct:
// 1 - C(n-c, k) / C(n, k) (Chen et al. 2021), as a product so that large n does not overflow.
// Requires 0 <= c <= n and 1 <= k <= n.
double pass_at_k(std::int64_t n, std::int64_t c, std::int64_t k);

// The sample whose answer wins the majority vote: answers are grouped by answers_match with the first
// answer of each group as its representative; the largest group wins, ties going to the group that
// appeared first; samples without an answer do not vote. nullopt when no sample has an answer.
std::optional<std::size_t> majority_sample(const std::vector<std::optional<std::string>>& answers);

// One sampled completion, scored.
struct ScoredSample {
  std::optional<std::string> answer;  // extract_answer of the completion
  bool correct = false;               // accuracy_reward == 1
  bool formatted = false;             // format_reward == 1
  bool truncated = false;             // cut by the length limit
  double language = 0;                // language_consistency_reward against the problem's language
  std::int64_t tokens = 0;
};
ScoredSample score_sample(std::string_view completion, const Problem& p, std::int64_t tokens, bool truncated);

// One prompt's samples, reduced to sums (so that ranks can add up results by global prompt index).
struct PromptResult {
  double samples = 0, correct = 0, consensus_correct = 0, answered = 0, formatted = 0, truncated = 0;
  double language_sum = 0, length_sum = 0;

  static constexpr std::size_t kFields = 8;
  void to(double* out) const;  // kFields values
  static PromptResult from(const double* in);
};
PromptResult reduce_prompt(const std::vector<ScoredSample>& samples);

// Metrics over a set of prompts (all with the same number of samples n): "prompts", "samples", "pass@1"
// (mean correctness), "pass@k" for each k in ks, "cons@n" (majority vote correct), "answer_rate",
// "format_rate", "truncated_fraction", "language_consistency" and "response_length_mean" (tokens).
nlohmann::json summarize(const std::vector<PromptResult>& prompts, std::int64_t n, const std::vector<std::int64_t>& ks);

}  // namespace r1
