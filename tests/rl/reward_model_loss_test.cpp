// The reward model's objectives: analytic d(loss)/d(reward) against central finite differences of the
// host loss, accuracy counting, and pairs/items without loss.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "rl/reward_model_loss.hpp"

namespace r1 {
namespace {

TEST(RewardModelLoss, PairwiseGradientMatchesFiniteDifferences) {
  const std::vector<double> r{0.3, -1.2, 2.5, 2.0, -0.7, 0.4, 40.0, -40.0};
  const std::vector<bool> valid{true, true, true, true};
  const double weight = 0.25, eps = 1e-6;
  const RewardLoss l = pairwise_loss(r, valid, weight);
  for (std::size_t i = 0; i < r.size(); ++i) {
    std::vector<double> up = r, down = r;
    up[i] += eps;
    down[i] -= eps;
    const double fd = weight * (pairwise_loss(up, valid, weight).loss_sum - pairwise_loss(down, valid, weight).loss_sum) / (2 * eps);
    EXPECT_NEAR(l.dr[i], fd, 1e-8) << "reward " << i;
  }
  // -log sigmoid(m) by hand; a large margin is stable (no overflow).
  const double want = std::log1p(std::exp(-1.5)) + std::log1p(std::exp(-0.5)) + std::log1p(std::exp(1.1)) + std::log1p(std::exp(-80.0));
  EXPECT_NEAR(l.loss_sum, want, 1e-12);
  EXPECT_EQ(l.correct, 3);  // the third pair prefers the rejected response
  EXPECT_TRUE(std::isfinite(pairwise_loss({-500, 500}, {true}, 1).loss_sum));
}

TEST(RewardModelLoss, PairsWithoutLossGetNoGradient) {
  const RewardLoss l = pairwise_loss({1.0, 0.0, 0.5, 2.0}, {false, true}, 1.0);
  EXPECT_EQ(l.dr[0], 0.0);
  EXPECT_EQ(l.dr[1], 0.0);
  EXPECT_NEAR(l.loss_sum, std::log1p(std::exp(1.5)), 1e-12);
  EXPECT_EQ(l.correct, 0);
  EXPECT_DOUBLE_EQ(l.dr[2], -l.dr[3]);
}

TEST(RewardModelLoss, PointwiseGradientMatchesFiniteDifferences) {
  const std::vector<double> r{0.3, -1.2, 2.5, -30.0, 0.0};
  const std::vector<int> labels{1, 0, 0, 1, 1};
  const std::vector<bool> valid{true, true, true, true, false};
  const double weight = 0.5, eps = 1e-6;
  const RewardLoss l = pointwise_loss(r, labels, valid, weight);
  for (std::size_t i = 0; i < r.size(); ++i) {
    std::vector<double> up = r, down = r;
    up[i] += eps;
    down[i] -= eps;
    const double fd = weight * (pointwise_loss(up, labels, valid, weight).loss_sum - pointwise_loss(down, labels, valid, weight).loss_sum) / (2 * eps);
    EXPECT_NEAR(l.dr[i], fd, 1e-8) << "reward " << i;
  }
  // BCE of sigmoid(r) against the label.
  const auto sig = [](double x) { return 1 / (1 + std::exp(-x)); };
  EXPECT_NEAR(l.loss_sum, -std::log(sig(0.3)) - std::log(1 - sig(-1.2)) - std::log(1 - sig(2.5)) - std::log(sig(-30.0)), 1e-9);
  EXPECT_EQ(l.correct, 2);
  EXPECT_EQ(l.dr[4], 0.0);
}

}  // namespace
}  // namespace r1
