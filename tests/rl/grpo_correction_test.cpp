// The rollout-vs-learner corrections of the GRPO objective (src/rl/grpo.hpp) and GSPO's sequence ratio as a
// specification: truncated and masked importance sampling and the sequence-level clipped surrogate on
// hand-computed batches, their gradients against central finite differences, the gap statistics
// (rl/grpo_stats.hpp) of a hand-computed pair of log-probs, and the deck keys with their rules.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/error.hpp"
#include "core/tensor.hpp"
#include "deck/validate.hpp"
#include "rl/grpo.hpp"
#include "rl/grpo_stats.hpp"
#include "rl/grpo_gradcheck.hpp"

using namespace r1;

namespace {

// A packed batch owning its arrays, with the rollout's log-probs; tokens() views them.
struct Batch {
  std::vector<float> logp_new, logp_old, logp_ref, logp_rollout;
  std::vector<std::int32_t> completion;
  std::vector<double> advantages;
  std::vector<std::uint8_t> truncated;

  void token(std::int32_t c, double lp_new, double lp_old, double lp_rollout) {
    completion.push_back(c);
    logp_new.push_back(static_cast<float>(lp_new));
    logp_old.push_back(static_cast<float>(lp_old));
    logp_ref.push_back(static_cast<float>(lp_new));
    logp_rollout.push_back(static_cast<float>(lp_rollout));
  }
  // A completion with per-token log(pi_theta / pi_old) `d` and rho = pi_old / pi_rollout `rho`.
  void completion_of(double adv, const std::vector<double>& d, const std::vector<double>& rho) {
    const auto c = static_cast<std::int32_t>(advantages.size());
    advantages.push_back(adv);
    truncated.push_back(0);
    for (std::size_t i = 0; i < d.size(); ++i) token(c, -1.5 + d[i], -1.5, -1.5 - std::log(rho[i]));
  }
  GrpoTokens tokens() const { return {logp_new, logp_old, logp_ref, completion, advantages, truncated, logp_rollout}; }
};

GrpoConfig config(RolloutCorrection corr, LossAgg agg = LossAgg::token_mean) {
  GrpoConfig c;
  c.loss_agg = agg;
  c.beta_kl = 0;
  c.epsilon_low = 0.2;
  c.epsilon_high = 0.28;
  c.rollout_correction = corr;
  c.correction_cap = 2;
  return c;
}

GrpoLoss loss_of(const Batch& b, const GrpoConfig& c) { return grpo_loss(b.tokens(), grpo_normaliser(b.tokens(), c), c); }

void expect_grads(const GrpoLoss& l, const std::vector<double>& want) {
  ASSERT_EQ(l.grad_logp_new.size(), want.size());
  for (std::size_t t = 0; t < want.size(); ++t) EXPECT_NEAR(l.grad_logp_new[t], want[t], 1e-6) << t;
}

}  // namespace

TEST(GrpoTis, WeighsEachTokensSurrogateByItsRhoCappedAtC) {
  Batch b;
  b.completion_of(1, {0, 0, 0}, {0.5, 1.5, 3});  // ratio 1 everywhere; rho 3 is capped at C = 2
  const GrpoLoss l = loss_of(b, config(RolloutCorrection::tis));
  EXPECT_NEAR(l.stats.loss, -(0.5 + 1.5 + 2) / 3, 1e-6);
  expect_grads(l, {-0.5 / 3, -1.5 / 3, -2.0 / 3});
  EXPECT_EQ(l.stats.is_capped, 1);
  EXPECT_NEAR(l.stats.is_weight_sum, 4, 1e-6);
  EXPECT_EQ(l.stats.is_masked, 0);
}

TEST(GrpoTis, NoneIgnoresTheRolloutsLogProbs) {
  Batch b;
  b.completion_of(1, {0, 0, 0}, {0.5, 1.5, 3});
  const GrpoLoss l = loss_of(b, config(RolloutCorrection::none));
  EXPECT_NEAR(l.stats.loss, -1, 1e-12);
  expect_grads(l, {-1 / 3., -1 / 3., -1 / 3.});
  EXPECT_EQ(l.stats.is_weight_sum, 3);
}

TEST(GrpoMis, TokenLevelDropsTokensOutsideTheBandFromLossAndNormaliser) {
  Batch b;
  b.completion_of(1, {0, 0, 0}, {0.4, 1.5, 3});  // band [1/2, 2]: the first and the last leave
  GrpoConfig c = config(RolloutCorrection::mis);
  c.mis_level = MisLevel::token;
  EXPECT_EQ(grpo_normaliser(b.tokens(), c).tokens, 1);
  const GrpoLoss l = loss_of(b, c);
  EXPECT_NEAR(l.stats.loss, -1, 1e-6);
  expect_grads(l, {0, -1, 0});
  EXPECT_EQ(l.stats.is_masked, 2);
  EXPECT_EQ(l.stats.tokens, 1);
}

TEST(GrpoMis, SequenceLevelDropsWholeCompletionsByTheirGeometricMeanRho) {
  Batch b;
  b.completion_of(1, {0, 0}, {4, 0.5});   // geometric mean sqrt(2): kept, though each token is outside the band
  b.completion_of(-1, {0, 0}, {3, 3});    // 3: dropped whole
  GrpoConfig c = config(RolloutCorrection::mis, LossAgg::seq_mean_token_mean);
  c.mis_level = MisLevel::sequence;
  const GrpoNormaliser n = grpo_normaliser(b.tokens(), c);
  EXPECT_EQ(n.completions, 1);
  EXPECT_EQ(n.tokens, 2);
  const GrpoLoss l = loss_of(b, c);
  EXPECT_NEAR(l.stats.loss, -1, 1e-6);
  expect_grads(l, {-0.5, -0.5, 0, 0});
  EXPECT_EQ(l.stats.is_masked, 2);
}

// s = exp(mean_t d): 1.2214 (inside [0.8, 1.28]), 1.4918 with A < 0 (min keeps the unclipped term and its
// gradient), 1.4918 with A > 0 (clipped at 1.28: no gradient). Each completion's loss is its mean over
// completions; d s / d logp_t = s / |c|.
TEST(Gspo, SequenceRatioClipsPerCompletionOnAHandComputedBatch) {
  Batch b;
  b.completion_of(1, {0.1, 0.3}, {1, 1});
  b.completion_of(-1, {0.4, 0.4}, {1, 1});
  b.completion_of(1, {0.2, 0.6}, {1, 1});
  GrpoConfig c = config(RolloutCorrection::none, LossAgg::seq_mean_token_mean);
  c.ratio = PolicyRatio::sequence;
  const double s1 = std::exp(0.2), s2 = std::exp(0.4);
  const GrpoLoss l = loss_of(b, c);
  EXPECT_NEAR(l.stats.loss, -(s1 - s2 + 1.28) / 3, 1e-6);
  expect_grads(l, {-s1 / 6, -s1 / 6, s2 / 6, s2 / 6, 0, 0});
  EXPECT_EQ(l.stats.clipped_high, 2);  // both tokens of the clipped completion
  EXPECT_NEAR(l.stats.mean_ratio(), (2 * s1 + 4 * s2) / 6, 1e-6);
}

TEST(Gspo, TisWeighsACompletionByItsGeometricMeanRho) {
  Batch b;
  b.completion_of(1, {0, 0}, {1.5, 6});  // rho_seq = 3, capped at 2
  GrpoConfig c = config(RolloutCorrection::tis, LossAgg::seq_mean_token_mean);
  c.ratio = PolicyRatio::sequence;
  const GrpoLoss l = loss_of(b, c);
  EXPECT_NEAR(l.stats.loss, -2, 1e-6);
  expect_grads(l, {-1, -1});
  EXPECT_EQ(l.stats.is_capped, 2);
}

TEST(Gspo, ItsGradientIsTheTokenRatiosWhereEveryTokenHasTheSameRatio) {
  Batch b;  // ratios equal within each completion: the sequence ratio is the token ratio
  b.completion_of(0.7, {0.05, 0.05, 0.05}, {1, 1, 1});
  b.completion_of(-0.4, {-0.1, -0.1}, {1, 1});
  GrpoConfig token = config(RolloutCorrection::none, LossAgg::seq_mean_token_mean), seq = token;
  seq.ratio = PolicyRatio::sequence;
  const GrpoLoss a = loss_of(b, token), s = loss_of(b, seq);
  EXPECT_NEAR(a.stats.loss, s.stats.loss, 1e-12);
  for (std::size_t t = 0; t < a.grad_logp_new.size(); ++t) EXPECT_NEAR(a.grad_logp_new[t], s.grad_logp_new[t], 1e-12) << t;
}

namespace {
// Five completions of random log-ratios (kept off the clip edges), rollout gaps and a reference.
Batch random_batch(unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> adv(0, 1), delta(0, 0.15), gap(0, 0.5), ref(0, 0.3);
  Batch b;
  const int lengths[] = {3, 1, 5, 2, 4};
  for (int c = 0; c < 5; ++c) {
    b.advantages.push_back(adv(rng));
    b.truncated.push_back(0);
    for (int i = 0; i < lengths[c]; ++i) {
      const double d = delta(rng);
      b.token(c, -1.5 + d, -1.5, -1.5 - gap(rng));
      b.logp_ref.back() = static_cast<float>(-1.5 + ref(rng));
    }
  }
  return b;
}

}  // namespace

TEST(GrpoCorrectionGradient, MatchesFiniteDifferencesForTisMisAndGspo) {
  for (PolicyRatio ratio : {PolicyRatio::token, PolicyRatio::sequence})
    for (RolloutCorrection corr : {RolloutCorrection::none, RolloutCorrection::tis, RolloutCorrection::mis})
      for (MisLevel level : {MisLevel::token, MisLevel::sequence}) {
        GrpoConfig c = config(corr, LossAgg::seq_mean_token_mean);
        c.ratio = ratio;
        c.mis_level = level;
        c.correction_cap = 1.5;
        c.beta_kl = 0.3;
        const Batch b = random_batch(5);
        const test::GradCheckResult r = test::grpo_gradcheck(b, grpo_normaliser(b.tokens(), c), c);
        EXPECT_LT(r.relative(), 1e-5) << "ratio " << static_cast<int>(ratio) << ", correction " << static_cast<int>(corr)
                                      << ", mis_level " << static_cast<int>(level);
        EXPECT_GT(r.max_abs_grad, 1e-3);
      }
}

TEST(GrpoMismatch, GapStatisticsOfHandComputedLogProbs) {
  MismatchStats m;
  m.add(-1.0, -1.0);
  m.add(-1.0, -1.5);  // delta 0.5
  m.add(-2.0, -1.95);  // delta -0.05
  EXPECT_EQ(m.tokens, 3);
  EXPECT_NEAR(m.abs_sum, 0.55, 1e-12);
  EXPECT_NEAR(m.abs_max, 0.5, 1e-12);
  EXPECT_EQ(m.over_0_1, 1);
  EXPECT_NEAR(m.k3_sum, (std::exp(0.5) - 0.5 - 1) + (std::exp(-0.05) + 0.05 - 1), 1e-12);
}

TEST(GrpoCorrectionConfig, ReadFromTheDeck) {
  const GrpoConfig c = Deck::parse("[grpo]\nratio = sequence\nrollout_correction = mis\ncorrection_cap = 3\n"
                                   "mis_level = token\nrouting_replay = true\n",
                                   "g.deck")
                           .config()
                           .grpo;
  EXPECT_EQ(c.ratio, PolicyRatio::sequence);
  EXPECT_EQ(c.rollout_correction, RolloutCorrection::mis);
  EXPECT_EQ(c.correction_cap, 3);
  EXPECT_EQ(c.mis_level, MisLevel::token);
  EXPECT_TRUE(c.routing_replay);
  const GrpoConfig d = Deck::parse("", "e.deck").config().grpo;  // the defaults keep GRPO as it was
  EXPECT_EQ(d.ratio, PolicyRatio::token);
  EXPECT_EQ(d.rollout_correction, RolloutCorrection::none);
  EXPECT_FALSE(d.routing_replay);
}

namespace {
// The user error validate_deck raises for `text`, or "" when it accepts it.
std::string deck_error(const std::string& text) {
  try {
    validate_deck(Deck::parse(text, "bad.deck"), 1);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::user);
    return e.what();
  }
  return "";
}
}  // namespace

TEST(GrpoCorrectionConfig, GspoWithAnotherAggregationAndReplayOnADenseModelAreErrorsNamingTheKeys) {
  const std::string gspo = deck_error("[grpo]\nratio = sequence\nloss_agg = token-mean\n");
  EXPECT_NE(gspo.find("bad.deck:2: [grpo] ratio = sequence"), std::string::npos) << gspo;
  EXPECT_NE(gspo.find("seq-mean-token-mean"), std::string::npos) << gspo;
  const std::string dense = deck_error("[model]\ndense = true\n[grpo]\nrouting_replay = true\n");
  EXPECT_NE(dense.find("bad.deck:4: [grpo] routing_replay = true"), std::string::npos) << dense;
  EXPECT_EQ(deck_error("[grpo]\nratio = sequence\nrollout_correction = tis\nrouting_replay = true\n"), "");
}
