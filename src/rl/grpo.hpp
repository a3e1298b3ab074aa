// GRPO's objective with the DAPO and Dr. GRPO variants, and its per-token gradient (formulas: docs/grpo.md).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "config/rl.hpp"

namespace r1 {

struct GroupAdvantages {
  std::vector<double> advantages;            // one per completion, in input order
  std::vector<std::int64_t> uniform_groups;  // ids of the groups whose rewards are all equal (zero advantage)
};

// A_i = (r_i - mean_g) / (std + adv_eps) per AdvScale, with mean_g over the completion's group (the
// completions sharing its id; they need not be adjacent). A group whose rewards are all equal, a group of
// one included, gets exactly zero advantages and is listed. With batch_std, call it on the groups that
// will be trained on (after filter_groups), since they set the std.
GroupAdvantages group_advantages(std::span<const double> rewards, std::span<const std::int64_t> group_ids,
                                 const GrpoConfig& config);

// DAPO's dynamic sampling: the groups whose rewards are not all equal, and where their completions are.
struct GroupFilter {
  std::vector<std::int64_t> kept_groups;       // group ids, in order of first appearance
  std::vector<std::int64_t> kept_completions;  // indices into the input, ascending
  std::int64_t dropped_groups = 0, dropped_completions = 0;
};
GroupFilter filter_groups(std::span<const double> rewards, std::span<const std::int64_t> group_ids);

// One packed batch of T tokens holding N completions (whole: a completion never spans two calls).
struct GrpoTokens {
  std::span<const float> logp_new;  // [T] log pi_theta(token): minus Model::token_losses
  std::span<const float> logp_old;  // [T] the same under the policy that sampled the completions
  std::span<const float> logp_ref;  // [T] the same under the reference policy; may be empty when beta_kl == 0
  std::span<const std::int32_t> completion;  // [T] the token's completion in [0, N); -1: prompt or padding
  std::span<const double> advantages;        // [N]
  std::span<const std::uint8_t> truncated;   // [N] 1: cut at the length limit; may be empty (none are)
  // [T] the same under the rollout's own forward (the engine's Completion::policy_logprobs); may be empty when
  // rollout_correction = none.
  std::span<const float> logp_rollout = {};
};

// The denominators of the aggregation (its loss tokens: completion tokens, less those of truncated completions
// under mask_truncated and those masked IS drops). They belong to the whole optimizer batch: sum them over its
// micro-batches (and data-parallel ranks) so that the micro-batches' losses and gradients add up to the
// batch's.
struct GrpoNormaliser {
  double tokens = 0;       // loss tokens
  double completions = 0;  // completions with at least one loss token
  GrpoNormaliser& operator+=(const GrpoNormaliser& o) {
    tokens += o.tokens;
    completions += o.completions;
    return *this;
  }
};
GrpoNormaliser grpo_normaliser(const GrpoTokens& batch, const GrpoConfig& config);

// Sums over the loss tokens of a call; they add up over micro-batches like the loss itself.
struct GrpoStats {
  double loss = 0;  // this call's share of the aggregated loss
  std::int64_t tokens = 0;
  double ratio_sum = 0;  // sum of pi_theta / pi_old
  double kl_sum = 0;     // sum of the configured KL estimator (0 when beta_kl == 0)
  // Tokens where the clip is active and zeroes the gradient: A < 0 with ratio < 1 - epsilon_low, and A > 0
  // with ratio > 1 + epsilon_high.
  std::int64_t clipped_low = 0, clipped_high = 0;
  // Rollout correction: tokens masked IS left out (not among `tokens`), loss tokens whose rho exceeded the
  // TIS cap, and the sum of the TIS weights (1 per token without TIS).
  std::int64_t is_masked = 0, is_capped = 0;
  double is_weight_sum = 0;

  double mean_ratio() const { return tokens ? ratio_sum / tokens : 0; }
  double mean_kl() const { return tokens ? kl_sum / tokens : 0; }
  double clip_fraction_low() const { return tokens ? static_cast<double>(clipped_low) / tokens : 0; }
  double clip_fraction_high() const { return tokens ? static_cast<double>(clipped_high) / tokens : 0; }
  GrpoStats& operator+=(const GrpoStats& o);
};

struct GrpoLoss {
  GrpoStats stats;
  std::vector<double> grad_logp_new;  // [T] d loss / d logp_new; 0 off the loss tokens
};

// The loss -(w surrogate - beta_kl * KL) aggregated per config.loss_agg with `norm`, and its exact gradient
// (w: the TIS weight, 1 without it, constant). With ratio = sequence (GSPO) the surrogate's ratio is each
// completion's exp(mean_t(logp_new - logp_old)) over its loss tokens, clipped per completion; it needs
// seq-mean-token-mean, under which the per-token form is the token ratio's with the sequence ratio in its
// place (docs/grpo.md).
GrpoLoss grpo_loss(const GrpoTokens& batch, const GrpoNormaliser& norm, const GrpoConfig& config);

// Model::backward's per-token weights, f32 [T]: d loss / d cross-entropy = -(d loss / d logp_new),
// since each token's cross-entropy is -logp_new. Also returns the stats when `stats` is given.
std::vector<float> grpo_token_weights(const GrpoTokens& batch, const GrpoNormaliser& norm, const GrpoConfig& config,
                                      GrpoStats* stats = nullptr);

}  // namespace r1
