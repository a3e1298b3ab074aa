// The reward model's objectives on host rewards: Bradley-Terry on preference pairs and binary
// cross-entropy on labelled responses, each with d(loss)/d(reward) for the scalar head's backward.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

namespace r1 {

struct RewardLoss {
  double loss_sum = 0;        // summed over the scored items (unweighted)
  std::int64_t correct = 0;   // pairs ranked right (pairwise) or responses classified right (pointwise)
  std::vector<double> dr;     // d(weight * loss_sum)/d(reward), one per reward
};

// log(1 + exp(x)) without overflow for large |x|.
inline double softplus(double x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }
inline double sigmoid(double x) { return x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x)); }

// Bradley-Terry: rewards come as (chosen, rejected) pairs, r[2k] and r[2k+1]; pair k counts where
// valid[k]. Loss of a pair: -log sigmoid(r_c - r_r) = softplus(r_r - r_c). A tie counts as wrong.
inline RewardLoss pairwise_loss(const std::vector<double>& r, const std::vector<bool>& valid, double weight) {
  RewardLoss out;
  out.dr.assign(r.size(), 0.0);
  for (std::size_t k = 0; k < valid.size(); ++k) {
    if (!valid[k]) continue;
    const double margin = r[2 * k] - r[2 * k + 1];
    out.loss_sum += softplus(-margin);
    out.correct += margin > 0;
    const double g = -sigmoid(-margin) * weight;  // d softplus(-m)/dm = -sigmoid(-m)
    out.dr[2 * k] = g;
    out.dr[2 * k + 1] = -g;
  }
  return out;
}

// Pointwise: sigmoid(r) is the probability of label 1 (safe); loss = BCE = softplus(r) - y r, per item
// where valid[i]. Correct where sigmoid(r) > 0.5 matches the label.
inline RewardLoss pointwise_loss(const std::vector<double>& r, const std::vector<int>& labels, const std::vector<bool>& valid,
                                 double weight) {
  RewardLoss out;
  out.dr.assign(r.size(), 0.0);
  for (std::size_t i = 0; i < r.size(); ++i) {
    if (!valid[i]) continue;
    const double y = labels[i];
    out.loss_sum += softplus(r[i]) - y * r[i];
    out.correct += (r[i] > 0) == (labels[i] == 1);
    out.dr[i] = (sigmoid(r[i]) - y) * weight;
  }
  return out;
}

}  // namespace r1
