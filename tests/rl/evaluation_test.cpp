#include <gtest/gtest.h>

#include <cmath>

#include "core/error.hpp"
#include "rl/evaluation.hpp"

using namespace r1;

namespace {

// pass@k by definition: the share of k-subsets of n samples (c correct, listed first) holding a correct one.
double brute_pass_at_k(int n, int c, int k) {
  std::int64_t subsets = 0, hits = 0;
  for (unsigned mask = 0; mask < (1u << n); ++mask) {
    if (__builtin_popcount(mask) != k) continue;
    ++subsets;
    hits += (mask & ((1u << c) - 1)) != 0;
  }
  return static_cast<double>(hits) / static_cast<double>(subsets);
}

Problem arithmetic(std::string answer) {
  Problem p;
  p.answer = std::move(answer);
  return p;
}

ScoredSample sample(std::optional<std::string> answer, bool correct, std::int64_t tokens = 10) {
  ScoredSample s;
  s.answer = std::move(answer);
  s.correct = correct;
  s.tokens = tokens;
  return s;
}

}  // namespace

TEST(PassAtK, UnbiasedEstimatorEqualsSubsetCountOnSmallN) {
  for (int n = 1; n <= 10; ++n)
    for (int c = 0; c <= n; ++c)
      for (int k = 1; k <= n; ++k) EXPECT_NEAR(pass_at_k(n, c, k), brute_pass_at_k(n, c, k), 1e-12) << n << " " << c << " " << k;
}

TEST(PassAtK, PassAt1IsTheCorrectShareAndLargeNDoesNotOverflow) {
  EXPECT_DOUBLE_EQ(pass_at_k(64, 16, 1), 0.25);
  EXPECT_DOUBLE_EQ(pass_at_k(4096, 0, 64), 0.0);
  EXPECT_DOUBLE_EQ(pass_at_k(4096, 4096 - 63, 64), 1.0);
  const double v = pass_at_k(4096, 1, 64);
  EXPECT_NEAR(v, 64.0 / 4096.0, 1e-12);
  EXPECT_THROW(pass_at_k(4, 5, 1), Error);
  EXPECT_THROW(pass_at_k(4, 1, 5), Error);
}

TEST(ConsensusVote, LargestGroupOfEquivalentAnswersWins) {
  // "0.5", "1/2" and "$1/2$" are one answer; "3" twice is the smaller group.
  EXPECT_EQ(majority_sample({std::string("3"), std::string("0.5"), std::string("1/2"), std::string("3"), std::string("$1/2$")}),
            std::optional<std::size_t>(1));
}

TEST(ConsensusVote, TiesGoToTheFirstGroupAndMissingAnswersDoNotVote) {
  EXPECT_EQ(majority_sample({std::nullopt, std::string("7"), std::nullopt, std::string("8"), std::nullopt}), std::optional<std::size_t>(1));
  EXPECT_EQ(majority_sample({std::nullopt, std::nullopt}), std::nullopt);
  EXPECT_EQ(majority_sample({}), std::nullopt);
}

TEST(ConsensusVote, ConsensusIsRightOnlyWhenTheMajorityIs) {
  // One correct sample among wrong ones that agree: pass@1 > 0, but the vote is wrong.
  PromptResult r = reduce_prompt({sample("21", true), sample("20", false), sample("20", false), sample(std::nullopt, false)});
  EXPECT_EQ(r.samples, 4);
  EXPECT_EQ(r.correct, 1);
  EXPECT_EQ(r.consensus_correct, 0);
  EXPECT_EQ(r.answered, 3);
  r = reduce_prompt({sample("21", true), sample("20", false), sample("21.0", true)});
  EXPECT_EQ(r.consensus_correct, 1);
}

TEST(ScoreSample, ScoresTheCompletionWithTheRuleBasedRewards) {
  const ScoredSample s = score_sample("<think>the sum is twenty-one</think><answer>21</answer>", arithmetic("21"), 12, false);
  EXPECT_TRUE(s.correct);
  EXPECT_TRUE(s.formatted);
  EXPECT_EQ(s.answer, std::optional<std::string>("21"));
  EXPECT_DOUBLE_EQ(s.language, 1.0);
  const ScoredSample t = score_sample("the answer is 21", arithmetic("21"), 5, true);
  EXPECT_FALSE(t.correct);
  EXPECT_FALSE(t.formatted);
  EXPECT_TRUE(t.truncated);
}

TEST(Summarize, AveragesPerPromptAndPerSample) {
  // Two prompts of n = 2: one with both samples right, one with none.
  const PromptResult good = reduce_prompt({sample("1", true, 10), sample("1", true, 30)});
  const PromptResult bad = reduce_prompt({sample("2", false, 20), sample(std::nullopt, false, 40)});
  const nlohmann::json m = summarize({good, bad}, 2, {1, 2});
  EXPECT_EQ(m["prompts"], 2);
  EXPECT_EQ(m["samples"], 4);
  EXPECT_DOUBLE_EQ(m["pass@1"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(m["pass@2"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(m["cons@2"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(m["answer_rate"].get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(m["response_length_mean"].get<double>(), 25.0);
  // A prompt with one of two right: pass@1 0.5, pass@2 1.
  const nlohmann::json h = summarize({reduce_prompt({sample("1", true), sample("2", false)})}, 2, {2});
  EXPECT_DOUBLE_EQ(h["pass@1"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(h["pass@2"].get<double>(), 1.0);
}

TEST(Summarize, PromptResultsRoundTripThroughTheirFlatForm) {
  const PromptResult r = reduce_prompt({sample("1", true, 10), sample("3", false, 7)});
  double flat[PromptResult::kFields];
  r.to(flat);
  const PromptResult back = PromptResult::from(flat);
  EXPECT_EQ(summarize({r}, 2, {1, 2}), summarize({back}, 2, {1, 2}));
}
