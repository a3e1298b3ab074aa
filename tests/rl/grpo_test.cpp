// The GRPO objective (src/rl/grpo.hpp) as a specification: advantages and group filtering on hand-computed
// groups, the loss of each aggregation on a hand-computed batch, the clip regions, the gradient against
// central finite differences (tests/kernels/gradcheck.hpp) for every KL estimator and aggregation, masking,
// micro-batch additivity, and the deck mapping.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "core/error.hpp"
#include "core/tensor.hpp"
#include "deck/validate.hpp"
#include "rl/grpo.hpp"
#include "rl/grpo_gradcheck.hpp"

using namespace r1;

namespace {

// A packed batch owning its arrays; tokens() views them.
struct Batch {
  std::vector<float> logp_new, logp_old, logp_ref;
  std::vector<std::int32_t> completion;
  std::vector<double> advantages;
  std::vector<std::uint8_t> truncated;

  // Appends `n` prompt tokens (no loss; their log-probs are junk that must not matter).
  void prompt(int n) {
    for (int i = 0; i < n; ++i) token(-1, 7.f, -3.f, 11.f);
  }
  void token(std::int32_t c, float lp_new, float lp_old, float lp_ref) {
    completion.push_back(c);
    logp_new.push_back(lp_new);
    logp_old.push_back(lp_old);
    logp_ref.push_back(lp_ref);
  }
  // A completion whose tokens have the given ratios pi_theta / pi_old (logp_ref = logp_new).
  void completion_with_ratios(double adv, const std::vector<double>& ratios, bool cut = false) {
    const auto c = static_cast<std::int32_t>(advantages.size());
    advantages.push_back(adv);
    truncated.push_back(cut);
    for (double r : ratios) {
      const float lp = -1.25f;
      token(c, lp, static_cast<float>(lp - std::log(r)), lp);
    }
  }
  GrpoTokens tokens() const { return {logp_new, logp_old, logp_ref, completion, advantages, truncated}; }
};

GrpoConfig config(LossAgg agg, double beta = 0, KlEstimator kl = KlEstimator::k3) {
  GrpoConfig c;
  c.loss_agg = agg;
  c.beta_kl = beta;
  c.kl_estimator = kl;
  c.epsilon_low = 0.2;
  c.epsilon_high = 0.28;
  c.max_completion_tokens = 4;
  return c;
}

GrpoLoss loss_of(const Batch& b, const GrpoConfig& c) {
  return grpo_loss(b.tokens(), grpo_normaliser(b.tokens(), c), c);
}

constexpr LossAgg kAggs[] = {LossAgg::token_mean, LossAgg::seq_mean_token_mean, LossAgg::seq_mean_token_sum_norm};
constexpr KlEstimator kEstimators[] = {KlEstimator::k1, KlEstimator::k2, KlEstimator::k3};

}  // namespace

TEST(GrpoAdvantages, GroupStdUsesTheSampleStdOfEachGroup) {
  GrpoConfig c;
  // Group 7 = {1, 0, 0, 1} interleaved with group 3 = {2, 2, 2}; group 4 has a single completion.
  const std::vector<double> r = {1, 2, 0, 2, 0, 2, 1, 5};
  const std::vector<std::int64_t> g = {7, 3, 7, 3, 7, 3, 7, 4};
  const GroupAdvantages a = group_advantages(r, g, c);
  // Group 7: mean 0.5, sample variance (4 * 0.25) / 3 = 1/3.
  const double a7 = 0.5 / (std::sqrt(1.0 / 3.0) + c.adv_eps);
  const std::vector<double> want = {a7, 0, -a7, 0, -a7, 0, a7, 0};
  for (std::size_t i = 0; i < r.size(); ++i) EXPECT_NEAR(a.advantages[i], want[i], 1e-12) << i;
  EXPECT_EQ(a.uniform_groups, (std::vector<std::int64_t>{3, 4}));
}

TEST(GrpoAdvantages, WithoutStdScalingOnlyTheGroupMeanIsRemoved) {
  GrpoConfig c;
  c.adv_scale = AdvScale::none;
  const GroupAdvantages a = group_advantages(std::vector<double>{1, 2, 0, 2, 0, 2, 1},
                                             std::vector<std::int64_t>{7, 3, 7, 3, 7, 3, 7}, c);
  EXPECT_EQ(a.advantages, (std::vector<double>{0.5, 0, -0.5, 0, -0.5, 0, 0.5}));
  EXPECT_EQ(a.uniform_groups, (std::vector<std::int64_t>{3}));
}

TEST(GrpoAdvantages, BatchStdDividesEveryGroupByTheSameStd) {
  GrpoConfig c;
  c.adv_scale = AdvScale::batch_std;
  const std::vector<double> r = {1, 2, 0, 2, 0, 2, 1, 3, 5};
  const std::vector<std::int64_t> g = {7, 3, 7, 3, 7, 3, 7, 9, 9};
  const GroupAdvantages a = group_advantages(r, g, c);
  // Batch mean 16/9; sum of squared deviations 48 - 16^2/9 = 176/9, sample variance (176/9) / 8.
  const double s = std::sqrt(176.0 / 72.0) + c.adv_eps;
  const std::vector<double> want = {0.5 / s, 0, -0.5 / s, 0, -0.5 / s, 0, 0.5 / s, -1 / s, 1 / s};
  for (std::size_t i = 0; i < r.size(); ++i) EXPECT_NEAR(a.advantages[i], want[i], 1e-12) << i;
  EXPECT_EQ(a.uniform_groups, (std::vector<std::int64_t>{3}));
}

TEST(GrpoAdvantages, EqualRewardsGiveExactlyZeroEvenWithALargeOffset) {
  GrpoConfig c;
  const GroupAdvantages a =
      group_advantages(std::vector<double>{1e9 + 0.1, 1e9 + 0.1, 1e9 + 0.1}, std::vector<std::int64_t>{1, 1, 1}, c);
  EXPECT_EQ(a.advantages, (std::vector<double>{0, 0, 0}));
  EXPECT_EQ(a.uniform_groups, (std::vector<std::int64_t>{1}));
}

TEST(GrpoAdvantages, FilterGroupsKeepsOnlyGroupsWithDifferentRewards) {
  const GroupFilter f = filter_groups(std::vector<double>{1, 0, 1, 1, 0, 0.5, 0, 0},
                                      std::vector<std::int64_t>{5, 5, 9, 9, 2, 2, 8, 8});
  EXPECT_EQ(f.kept_groups, (std::vector<std::int64_t>{5, 2}));
  EXPECT_EQ(f.kept_completions, (std::vector<std::int64_t>{0, 1, 4, 5}));
  EXPECT_EQ(f.dropped_groups, 2);
  EXPECT_EQ(f.dropped_completions, 4);
}

// Completion 0: A = 1, ratios {1, 1.1, 0.9} -> token losses -1, -1.1, -0.9 (sum -3, mean -1).
// Completion 1: A = -2, ratios {1, 1.1} -> min(-2.2, clip(1.1) * -2 = -2.2) -> losses 2, 2.2 (sum 4.2, mean 2.1).
// No ratio is clipped (epsilon 0.2 / 0.28), beta = 0.
Batch hand_batch() {
  Batch b;
  b.prompt(2);
  b.completion_with_ratios(1, {1, 1.1, 0.9});
  b.prompt(1);
  b.completion_with_ratios(-2, {1, 1.1});
  return b;
}

TEST(GrpoLoss, TokenMeanOnAHandComputedBatch) {
  const GrpoLoss l = loss_of(hand_batch(), config(LossAgg::token_mean));
  EXPECT_NEAR(l.stats.loss, (-3 + 4.2) / 5, 1e-6);
  // d/dlogp of -ratio * A / 5 is -ratio * A / 5; prompt tokens get nothing.
  const std::vector<double> want = {0, 0, -1 / 5., -1.1 / 5, -0.9 / 5, 0, 2 / 5., 2.2 / 5};
  for (std::size_t t = 0; t < want.size(); ++t) EXPECT_NEAR(l.grad_logp_new[t], want[t], 1e-6) << t;
  EXPECT_EQ(l.stats.tokens, 5);
  EXPECT_NEAR(l.stats.mean_ratio(), (1 + 1.1 + 0.9 + 1 + 1.1) / 5, 1e-6);
}

TEST(GrpoLoss, SeqMeanTokenMeanOnAHandComputedBatch) {
  const GrpoLoss l = loss_of(hand_batch(), config(LossAgg::seq_mean_token_mean));
  EXPECT_NEAR(l.stats.loss, (-1 + 2.1) / 2, 1e-6);
  const std::vector<double> want = {0, 0, -1 / 6., -1.1 / 6, -0.9 / 6, 0, 2 / 4., 2.2 / 4};
  for (std::size_t t = 0; t < want.size(); ++t) EXPECT_NEAR(l.grad_logp_new[t], want[t], 1e-6) << t;
}

TEST(GrpoLoss, SeqMeanTokenSumNormDividesByTheMaxCompletionLength) {
  const GrpoLoss l = loss_of(hand_batch(), config(LossAgg::seq_mean_token_sum_norm));  // max length 4
  EXPECT_NEAR(l.stats.loss, (-3 / 4. + 4.2 / 4) / 2, 1e-6);
  const std::vector<double> want = {0, 0, -1 / 8., -1.1 / 8, -0.9 / 8, 0, 2 / 8., 2.2 / 8};
  for (std::size_t t = 0; t < want.size(); ++t) EXPECT_NEAR(l.grad_logp_new[t], want[t], 1e-6) << t;
}

TEST(GrpoLoss, TokenWeightsAreMinusTheGradientInF32) {
  const Batch b = hand_batch();
  const GrpoConfig c = config(LossAgg::seq_mean_token_mean, 0.05);
  const GrpoLoss l = loss_of(b, c);
  GrpoStats stats;
  const std::vector<float> w = grpo_token_weights(b.tokens(), grpo_normaliser(b.tokens(), c), c, &stats);
  ASSERT_EQ(w.size(), l.grad_logp_new.size());
  for (std::size_t t = 0; t < w.size(); ++t) EXPECT_EQ(w[t], static_cast<float>(-l.grad_logp_new[t])) << t;
  EXPECT_EQ(stats.loss, l.stats.loss);
}

// One token with advantage `adv` and ratio `ratio` (epsilon_low 0.2, epsilon_high 0.28, beta 0).
GrpoLoss single_token(double adv, double ratio) {
  Batch b;
  b.completion_with_ratios(adv, {ratio});
  return loss_of(b, config(LossAgg::token_mean));
}

TEST(GrpoClip, PositiveAdvantageAboveOnePlusEpsilonHighHasZeroGradient) {
  const GrpoLoss l = single_token(1, 1.5);
  EXPECT_NEAR(l.stats.loss, -1.28, 1e-6);
  EXPECT_EQ(l.grad_logp_new[0], 0);
  EXPECT_EQ(l.stats.clipped_high, 1);
  EXPECT_EQ(l.stats.clipped_low, 0);
}

TEST(GrpoClip, NegativeAdvantageBelowOneMinusEpsilonLowHasZeroGradient) {
  const GrpoLoss l = single_token(-1, 0.5);
  EXPECT_NEAR(l.stats.loss, 0.8, 1e-6);
  EXPECT_EQ(l.grad_logp_new[0], 0);
  EXPECT_EQ(l.stats.clipped_low, 1);
  EXPECT_EQ(l.stats.clipped_high, 0);
}

TEST(GrpoClip, PositiveAdvantageBelowTheLowClipKeepsItsGradient) {
  const GrpoLoss l = single_token(1, 0.5);  // min(0.5, 0.8) = 0.5: the unclipped term
  EXPECT_NEAR(l.stats.loss, -0.5, 1e-6);
  EXPECT_NEAR(l.grad_logp_new[0], -0.5, 1e-6);
  EXPECT_EQ(l.stats.clipped_low + l.stats.clipped_high, 0);
}

TEST(GrpoClip, NegativeAdvantageAboveTheHighClipKeepsItsGradient) {
  const GrpoLoss l = single_token(-1, 1.5);  // min(-1.5, -1.28) = -1.5: the unclipped term
  EXPECT_NEAR(l.stats.loss, 1.5, 1e-6);
  EXPECT_NEAR(l.grad_logp_new[0], 1.5, 1e-6);
  EXPECT_EQ(l.stats.clipped_low + l.stats.clipped_high, 0);
}

TEST(GrpoClip, InsideTheTrustRegionTheGradientIsRatioTimesAdvantage) {
  EXPECT_NEAR(single_token(2, 1.1).grad_logp_new[0], -2.2, 1e-6);
  EXPECT_NEAR(single_token(-2, 0.9).grad_logp_new[0], 1.8, 1e-6);
  const GrpoLoss zero = single_token(0, 1.7);
  EXPECT_EQ(zero.stats.loss, 0);
  EXPECT_EQ(zero.grad_logp_new[0], 0);
}

TEST(GrpoClip, ClipFractionsCountTokensOverTheLossTokens) {
  Batch b;
  b.completion_with_ratios(1, {1.5, 1.0, 0.5, 1.4});  // two above 1.28
  b.completion_with_ratios(-1, {0.5, 1.5, 1.0, 1.0});  // one below 0.8
  const GrpoLoss l = loss_of(b, config(LossAgg::token_mean));
  EXPECT_DOUBLE_EQ(l.stats.clip_fraction_high(), 2 / 8.);
  EXPECT_DOUBLE_EQ(l.stats.clip_fraction_low(), 1 / 8.);
}

// A random batch: prompts, completions of various lengths (one truncated), ratios spread over [0.55, 1.8]
// but at least 0.01 away from the clip boundaries 0.8 and 1.28, and a reference 0.3 nats around the policy.
Batch random_batch(std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> logp(-3, -0.1), delta(-0.6, 0.6), adv(-1.5, 1.5);
  std::normal_distribution<double> ref(0, 0.3);
  Batch b;
  const int lengths[] = {3, 1, 5, 2, 4};
  for (int c = 0; c < 5; ++c) {
    b.prompt(2);
    b.advantages.push_back(adv(rng));
    b.truncated.push_back(c == 2);
    for (int i = 0; i < lengths[c]; ++i) {
      double d = delta(rng);
      while (std::fabs(std::exp(d) - 0.8) < 0.01 || std::fabs(std::exp(d) - 1.28) < 0.01) d = delta(rng);
      const double lp = logp(rng);
      b.token(c, static_cast<float>(lp), static_cast<float>(lp - d), static_cast<float>(lp + ref(rng)));
    }
  }
  return b;
}

// Central differences with eps 1e-3 on f32 log-probs; the loss is accumulated in double from them, so the
// error is the O(eps^2) truncation term, far below 1e-5 of the gradient scale, while a wrong term is O(1).
TEST(GrpoGradient, MatchesFiniteDifferencesForEveryKlEstimatorAndAggregation) {
  for (LossAgg agg : kAggs)
    for (KlEstimator kl : kEstimators)
      for (bool mask : {false, true}) {
        Batch b = random_batch(17);
        GrpoConfig c = config(agg, 0.3, kl);
        c.mask_truncated = mask;
        const GrpoNormaliser norm = grpo_normaliser(b.tokens(), c);
        const GrpoLoss l = grpo_loss(b.tokens(), norm, c);
        EXPECT_GT(l.stats.clipped_low, 0);  // the flat regions are exercised too
        EXPECT_GT(l.stats.clipped_high, 0);
        const test::GradCheckResult r = test::grpo_gradcheck(b, norm, c);
        EXPECT_LT(r.relative(), 1e-5) << "loss_agg " << static_cast<int>(agg) << ", kl " << static_cast<int>(kl)
                                      << ", mask_truncated " << mask;
        EXPECT_GT(r.max_abs_grad, 1e-3);
      }
}

TEST(GrpoGradient, AtRatioOneItIsThePlainPolicyGradientPlusTheKlTerm) {
  for (LossAgg agg : kAggs) {
    Batch b = random_batch(3);
    b.logp_old = b.logp_new;  // the first inner epoch: pi_old is pi_theta
    const GrpoConfig c = config(agg, 0.2, KlEstimator::k3);
    const GrpoNormaliser norm = grpo_normaliser(b.tokens(), c);
    const GrpoLoss l = grpo_loss(b.tokens(), norm, c);
    std::vector<double> length(b.advantages.size(), 0);
    for (std::int32_t comp : b.completion)
      if (comp >= 0) length[comp] += 1;
    for (std::size_t t = 0; t < b.completion.size(); ++t) {
      const std::int32_t comp = b.completion[t];
      if (comp < 0) continue;
      const double normaliser = agg == LossAgg::token_mean            ? norm.tokens
                                : agg == LossAgg::seq_mean_token_mean ? norm.completions * length[comp]
                                                                      : norm.completions * c.max_completion_tokens;
      const double kl_grad = 1 - std::exp(static_cast<double>(b.logp_ref[t]) - b.logp_new[t]);  // k3
      EXPECT_NEAR(l.grad_logp_new[t], (-b.advantages[comp] + c.beta_kl * kl_grad) / normaliser, 1e-12) << t;
    }
    EXPECT_EQ(l.stats.clipped_low + l.stats.clipped_high, 0);
    EXPECT_DOUBLE_EQ(l.stats.mean_ratio(), 1);
  }
}

TEST(GrpoKl, EstimatorsAtAHandComputedToken) {
  // log r = logp_ref - logp_new = -0.5: k1 = 0.5, k2 = 0.125, k3 = e^-0.5 - 0.5 = 0.10653...
  const double want[] = {0.5, 0.125, std::exp(-0.5) - 0.5};
  const double want_grad[] = {1, 0.5, 1 - std::exp(-0.5)};
  for (int k = 0; k < 3; ++k) {
    Batch b;
    b.advantages = {0};
    b.token(0, -1.0f, -1.0f, -1.5f);
    const GrpoLoss l = loss_of(b, config(LossAgg::token_mean, 2, kEstimators[k]));
    EXPECT_NEAR(l.stats.mean_kl(), want[k], 1e-7) << k;
    EXPECT_NEAR(l.stats.loss, 2 * want[k], 1e-7) << k;
    EXPECT_NEAR(l.grad_logp_new[0], 2 * want_grad[k], 1e-7) << k;
  }
}

TEST(GrpoKl, BetaZeroNeverReadsTheReference) {
  Batch b = random_batch(5);
  const GrpoConfig c = config(LossAgg::seq_mean_token_mean, 0);
  const GrpoLoss with_nan = [&] {
    Batch nan = b;
    for (float& v : nan.logp_ref) v = std::numeric_limits<float>::quiet_NaN();
    return loss_of(nan, c);
  }();
  b.logp_ref.clear();
  const GrpoLoss without = loss_of(b, c);
  EXPECT_EQ(with_nan.stats.loss, without.stats.loss);
  EXPECT_EQ(with_nan.grad_logp_new, without.grad_logp_new);
  EXPECT_EQ(with_nan.stats.kl_sum, 0);
  EXPECT_FALSE(std::isnan(without.stats.loss));
}

TEST(GrpoMask, TruncatedCompletionsLeaveNumeratorAndDenominator) {
  for (LossAgg agg : kAggs) {
    Batch b = random_batch(9);  // completion 2 is truncated
    GrpoConfig c = config(agg, 0.1);
    c.mask_truncated = true;
    const GrpoLoss masked = loss_of(b, c);
    // The same batch with completion 2's tokens turned into prompt tokens, and no masking.
    Batch removed = b;
    for (std::int32_t& comp : removed.completion)
      if (comp == 2) comp = -1;
    c.mask_truncated = false;
    const GrpoLoss reference = loss_of(removed, c);
    EXPECT_NEAR(masked.stats.loss, reference.stats.loss, 1e-12);
    for (std::size_t t = 0; t < b.completion.size(); ++t)
      EXPECT_NEAR(masked.grad_logp_new[t], reference.grad_logp_new[t], 1e-12) << t;
    EXPECT_EQ(masked.stats.tokens, reference.stats.tokens);
    // Without masking the truncated completion counts.
    EXPECT_GT(loss_of(b, c).stats.tokens, masked.stats.tokens);
  }
}

TEST(GrpoMask, NormaliserCountsLossTokensAndCompletions) {
  Batch b = hand_batch();
  b.completion_with_ratios(1, {1, 1, 1}, /*cut=*/true);
  GrpoConfig c = config(LossAgg::token_mean);
  GrpoNormaliser n = grpo_normaliser(b.tokens(), c);
  EXPECT_EQ(n.tokens, 8);
  EXPECT_EQ(n.completions, 3);
  c.mask_truncated = true;
  n = grpo_normaliser(b.tokens(), c);
  EXPECT_EQ(n.tokens, 5);
  EXPECT_EQ(n.completions, 2);
}

TEST(GrpoMicroBatches, LossesAndGradientsAddUpUnderTheBatchNormaliser) {
  for (LossAgg agg : kAggs) {
    const Batch whole = random_batch(21);
    const GrpoConfig c = config(agg, 0.1, KlEstimator::k2);
    const GrpoLoss all = loss_of(whole, c);
    // Split between completions 2 and 3 (token 15 starts completion 3's prompt).
    Batch parts[2];
    for (std::size_t t = 0; t < whole.completion.size(); ++t) {
      Batch& p = parts[t >= 15];
      p.token(whole.completion[t], whole.logp_new[t], whole.logp_old[t], whole.logp_ref[t]);
    }
    for (Batch& p : parts) {
      p.advantages = whole.advantages;
      p.truncated = whole.truncated;
    }
    GrpoNormaliser norm;
    for (const Batch& p : parts) norm += grpo_normaliser(p.tokens(), c);
    GrpoStats sum;
    std::vector<double> grad;
    for (const Batch& p : parts) {
      const GrpoLoss l = grpo_loss(p.tokens(), norm, c);
      sum += l.stats;
      grad.insert(grad.end(), l.grad_logp_new.begin(), l.grad_logp_new.end());
    }
    EXPECT_NEAR(sum.loss, all.stats.loss, 1e-12);
    EXPECT_EQ(sum.tokens, all.stats.tokens);
    for (std::size_t t = 0; t < grad.size(); ++t) EXPECT_NEAR(grad[t], all.grad_logp_new[t], 1e-15) << t;
  }
}

TEST(GrpoConfig, ReadFromTheDeck) {
  const Deck d = Deck::parse(
      "[grpo]\nepsilon_high = 0.28\nbeta_kl = 0\nkl_estimator = k2\nloss_agg = seq-mean-token-sum-norm\n"
      "adv_std_scale = false\ndynamic_sampling = true\nmask_truncated = true\ninner_epochs = 2\n"
      "[sampling]\nmax_new_tokens = 1024\n",
      "grpo.deck");
  const GrpoConfig c = d.config().grpo;
  EXPECT_EQ(c.group_size, 16);
  EXPECT_EQ(c.epsilon_low, 0.2);
  EXPECT_EQ(c.epsilon_high, 0.28);
  EXPECT_EQ(c.beta_kl, 0);
  EXPECT_EQ(c.kl_estimator, KlEstimator::k2);
  EXPECT_EQ(c.loss_agg, LossAgg::seq_mean_token_sum_norm);
  EXPECT_EQ(c.adv_scale, AdvScale::none);
  EXPECT_TRUE(c.dynamic_sampling);
  EXPECT_TRUE(c.mask_truncated);
  EXPECT_EQ(c.inner_epochs, 2);
  EXPECT_EQ(c.max_completion_tokens, 1024);
  EXPECT_EQ(Deck::parse("[grpo]\nadv_std_scope = batch\n", "b.deck").config().grpo.adv_scale,
            AdvScale::batch_std);
  EXPECT_EQ(Deck::parse("", "e.deck").config().grpo.adv_scale, AdvScale::group_std);
}

TEST(GrpoConfig, BatchStdWithoutStdScalingIsAUserErrorNamingTheKey) {
  const Deck d = Deck::parse("[grpo]\nadv_std_scale = false\nadv_std_scope = batch\n", "bad.deck");
  try {
    validate_deck(d, 1);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::user);
    EXPECT_NE(std::string(e.what()).find("adv_std_scope"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bad.deck:3"), std::string::npos) << e.what();
  }
}
