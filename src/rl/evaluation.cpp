#include "rl/evaluation.hpp"

#include <algorithm>

#include "core/error.hpp"
#include "rl/rewards.hpp"

namespace r1 {

double pass_at_k(std::int64_t n, std::int64_t c, std::int64_t k) {
  R1_REQUIRE(0 <= c && c <= n && 1 <= k && k <= n, "pass@k needs 0 <= c <= n and 1 <= k <= n (n ", n, ", c ", c, ", k ", k, ")");
  if (n - c < k) return 1.0;  // every k-subset holds a correct sample
  // C(n-c, k) / C(n, k) = prod_{i = n-c+1}^{n} (1 - k / i)
  double fail = 1.0;
  for (std::int64_t i = n - c + 1; i <= n; ++i) fail *= 1.0 - static_cast<double>(k) / static_cast<double>(i);
  return 1.0 - fail;
}

std::optional<std::size_t> majority_sample(const std::vector<std::optional<std::string>>& answers) {
  struct Group {
    std::size_t first;
    std::int64_t votes;
  };
  std::vector<Group> groups;
  for (std::size_t i = 0; i < answers.size(); ++i) {
    if (!answers[i]) continue;
    bool joined = false;
    for (Group& g : groups)
      if (answers_match(*answers[i], *answers[g.first])) {
        ++g.votes;
        joined = true;
        break;
      }
    if (!joined) groups.push_back({i, 1});
  }
  if (groups.empty()) return std::nullopt;
  const Group* best = &groups.front();
  for (const Group& g : groups)
    if (g.votes > best->votes) best = &g;
  return best->first;
}

ScoredSample score_sample(std::string_view completion, const Problem& p, std::int64_t tokens, bool truncated) {
  ScoredSample s;
  s.answer = extract_answer(completion);
  s.correct = accuracy_reward(completion, p) == 1;
  s.formatted = format_reward(completion) == 1;
  s.truncated = truncated;
  s.language = language_consistency_reward(completion, p.language);
  s.tokens = tokens;
  return s;
}

void PromptResult::to(double* out) const {
  const double v[kFields] = {samples, correct, consensus_correct, answered, formatted, truncated, language_sum, length_sum};
  std::copy(v, v + kFields, out);
}

PromptResult PromptResult::from(const double* in) {
  return {.samples = in[0], .correct = in[1], .consensus_correct = in[2], .answered = in[3], .formatted = in[4],
          .truncated = in[5], .language_sum = in[6], .length_sum = in[7]};
}

PromptResult reduce_prompt(const std::vector<ScoredSample>& samples) {
  PromptResult r;
  std::vector<std::optional<std::string>> answers;
  for (const ScoredSample& s : samples) {
    r.samples += 1;
    r.correct += s.correct;
    r.answered += s.answer.has_value();
    r.formatted += s.formatted;
    r.truncated += s.truncated;
    r.language_sum += s.language;
    r.length_sum += static_cast<double>(s.tokens);
    answers.push_back(s.answer);
  }
  // The voted answer is right when the sample that represents it is (countdown answers are judged by
  // value and numbers used, so the representative's verdict stands for its group).
  if (const auto m = majority_sample(answers)) r.consensus_correct = samples[*m].correct;
  return r;
}

nlohmann::json summarize(const std::vector<PromptResult>& prompts, std::int64_t n, const std::vector<std::int64_t>& ks) {
  const double count = static_cast<double>(prompts.size());
  double samples = 0, correct = 0, cons = 0, answered = 0, formatted = 0, truncated = 0, language = 0, length = 0;
  std::vector<double> pass(ks.size(), 0.0);
  for (const PromptResult& p : prompts) {
    R1_CHECK(static_cast<std::int64_t>(p.samples) == n, "a prompt has ", p.samples, " samples, expected ", n);
    samples += p.samples;
    correct += p.correct / p.samples;
    cons += p.consensus_correct;
    answered += p.answered;
    formatted += p.formatted;
    truncated += p.truncated;
    language += p.language_sum;
    length += p.length_sum;
    for (std::size_t i = 0; i < ks.size(); ++i) pass[i] += pass_at_k(n, static_cast<std::int64_t>(p.correct), ks[i]);
  }
  const auto mean = [](double sum, double over) { return over > 0 ? sum / over : 0.0; };
  nlohmann::json j = {{"prompts", prompts.size()}, {"samples", static_cast<std::int64_t>(samples)}, {"pass@1", mean(correct, count)}};
  for (std::size_t i = 0; i < ks.size(); ++i)
    if (ks[i] != 1) j[detail::concat("pass@", ks[i])] = mean(pass[i], count);  // pass@1 is mean correctness, exactly
  j[detail::concat("cons@", n)] = mean(cons, count);
  j["answer_rate"] = mean(answered, samples);
  j["format_rate"] = mean(formatted, samples);
  j["truncated_fraction"] = mean(truncated, samples);
  j["language_consistency"] = mean(language, samples);
  j["response_length_mean"] = mean(length, samples);
  return j;
}

}  // namespace r1
