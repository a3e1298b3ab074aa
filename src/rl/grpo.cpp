#include "rl/grpo.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <unordered_map>

#include "core/error.hpp"

namespace r1 {
namespace {

struct Group {
  std::int64_t id = 0, size = 0;
  double sum = 0, min = 0, max = 0, squares = 0;  // squares: sum of (r - mean)^2
  double mean() const { return sum / static_cast<double>(size); }
  bool uniform() const { return min == max; }
  // Bessel-corrected, as torch.std computes it in TRL's and veRL's GRPO.
  double sample_std() const { return size > 1 ? std::sqrt(squares / static_cast<double>(size - 1)) : 0.0; }
};

// The groups in order of first appearance, and each completion's group.
std::vector<Group> collect_groups(std::span<const double> rewards, std::span<const std::int64_t> group_ids,
                                  std::vector<std::size_t>& group_of) {
  R1_CHECK(rewards.size() == group_ids.size(), rewards.size(), " rewards for ", group_ids.size(), " group ids");
  std::vector<Group> groups;
  std::unordered_map<std::int64_t, std::size_t> slot;
  group_of.resize(rewards.size());
  for (std::size_t i = 0; i < rewards.size(); ++i) {
    const auto [it, fresh] = slot.try_emplace(group_ids[i], groups.size());
    if (fresh) groups.push_back({group_ids[i], 0, 0, rewards[i], rewards[i], 0});
    Group& g = groups[it->second];
    ++g.size;
    g.sum += rewards[i];
    g.min = std::min(g.min, rewards[i]);
    g.max = std::max(g.max, rewards[i]);
    group_of[i] = it->second;
  }
  // Centred second pass: no cancellation when the rewards share a large offset.
  for (std::size_t i = 0; i < rewards.size(); ++i) {
    Group& g = groups[group_of[i]];
    g.squares += (rewards[i] - g.mean()) * (rewards[i] - g.mean());
  }
  return groups;
}

double batch_sample_std(std::span<const double> rewards) {
  if (rewards.size() < 2) return 0;
  double mean = 0;
  for (double r : rewards) mean += r;
  mean /= static_cast<double>(rewards.size());
  double squares = 0;
  for (double r : rewards) squares += (r - mean) * (r - mean);
  return std::sqrt(squares / static_cast<double>(rewards.size() - 1));
}

// The loss tokens of a batch and their importance weights: completion tokens, less those of truncated
// completions under mask_truncated and those masked IS drops; TIS's min(rho, C) per token (1 otherwise).
struct LossTokens {
  std::vector<std::int32_t> completion;  // [T] the token's completion, or -1 when it is out of the loss
  std::vector<double> is_weight;         // [T]
  std::vector<double> length;            // [N] loss tokens per completion
  std::int64_t masked = 0, capped = 0;
};

// Per completion, the mean over `in`'s tokens of a - b (0 for a completion without any).
std::vector<double> completion_means(const std::vector<std::int32_t>& in, std::span<const float> a,
                                     std::span<const float> b, std::size_t n) {
  std::vector<double> sum(n, 0), count(n, 0);
  for (std::size_t t = 0; t < in.size(); ++t)
    if (const std::int32_t c = in[t]; c >= 0) {
      sum[c] += static_cast<double>(a[t]) - static_cast<double>(b[t]);
      count[c] += 1;
    }
  for (std::size_t c = 0; c < n; ++c) sum[c] = count[c] > 0 ? sum[c] / count[c] : 0;
  return sum;
}

// rho = pi_old / pi_rollout per token, or per completion (its geometric mean over the completion's tokens)
// where the correction acts on whole completions: MIS at mis_level sequence, TIS under the sequence ratio.
void correct_for_rollout(const GrpoTokens& b, const GrpoConfig& cfg, LossTokens& lt) {
  const double cap = cfg.correction_cap;
  const std::vector<double> log_rho_seq = completion_means(lt.completion, b.logp_old, b.logp_rollout, b.advantages.size());
  const bool mis = cfg.rollout_correction == RolloutCorrection::mis;
  const bool per_sequence = mis ? cfg.mis_level == MisLevel::sequence : cfg.ratio == PolicyRatio::sequence;
  for (std::size_t t = 0; t < lt.completion.size(); ++t) {
    const std::int32_t c = lt.completion[t];
    if (c < 0) continue;
    const double log_rho =
        per_sequence ? log_rho_seq[c] : static_cast<double>(b.logp_old[t]) - static_cast<double>(b.logp_rollout[t]);
    const double rho = std::exp(log_rho);
    if (mis && (rho > cap || rho < 1 / cap)) {
      lt.completion[t] = -1;
      ++lt.masked;
    } else if (!mis) {
      lt.is_weight[t] = std::min(rho, cap);
      lt.capped += rho > cap;
    }
  }
}

LossTokens loss_tokens(const GrpoTokens& b, const GrpoConfig& cfg) {
  const std::size_t T = b.completion.size();
  LossTokens lt{.completion = std::vector<std::int32_t>(T, -1), .is_weight = std::vector<double>(T, 1.0),
                .length = std::vector<double>(b.advantages.size(), 0)};
  for (std::size_t t = 0; t < T; ++t) {
    const std::int32_t c = b.completion[t];
    if (c < 0) continue;
    R1_CHECK(static_cast<std::size_t>(c) < b.advantages.size(), "token ", t, " names completion ", c, " of ",
             b.advantages.size());
    lt.completion[t] = cfg.mask_truncated && !b.truncated.empty() && b.truncated[c] ? -1 : c;
  }
  if (cfg.rollout_correction != RolloutCorrection::none) correct_for_rollout(b, cfg, lt);
  for (const std::int32_t c : lt.completion)
    if (c >= 0) lt.length[c] += 1;
  return lt;
}

void check_shapes(const GrpoTokens& b, const GrpoConfig& c) {
  const std::size_t T = b.completion.size();
  R1_CHECK(b.logp_new.size() == T && b.logp_old.size() == T, "logp_new ", b.logp_new.size(), ", logp_old ",
           b.logp_old.size(), " for ", T, " tokens");
  R1_CHECK(c.beta_kl == 0 || b.logp_ref.size() == T, "beta_kl > 0 needs logp_ref for all ", T, " tokens");
  R1_CHECK(b.truncated.empty() || b.truncated.size() == b.advantages.size(), b.truncated.size(),
           " truncation flags for ", b.advantages.size(), " completions");
  R1_CHECK(c.rollout_correction == RolloutCorrection::none || b.logp_rollout.size() == T,
           "rollout_correction needs the rollout's log-probs for all ", T, " tokens, got ", b.logp_rollout.size());
  R1_CHECK(c.ratio == PolicyRatio::token || c.loss_agg == LossAgg::seq_mean_token_mean,
           "the sequence ratio (GSPO) aggregates as seq-mean-token-mean");
}

}  // namespace

GroupAdvantages group_advantages(std::span<const double> rewards, std::span<const std::int64_t> group_ids,
                                 const GrpoConfig& config) {
  std::vector<std::size_t> group_of;
  const std::vector<Group> groups = collect_groups(rewards, group_ids, group_of);
  const double batch_std = config.adv_scale == AdvScale::batch_std ? batch_sample_std(rewards) : 0;
  GroupAdvantages out;
  out.advantages.resize(rewards.size());
  for (std::size_t i = 0; i < rewards.size(); ++i) {
    const Group& g = groups[group_of[i]];
    // Exactly zero rather than (r - mean) / eps rounding noise: these groups carry no learning signal.
    if (g.uniform()) continue;
    const double centred = rewards[i] - g.mean();
    switch (config.adv_scale) {
      case AdvScale::group_std: out.advantages[i] = centred / (g.sample_std() + config.adv_eps); break;
      case AdvScale::batch_std: out.advantages[i] = centred / (batch_std + config.adv_eps); break;
      case AdvScale::none: out.advantages[i] = centred; break;
    }
  }
  for (const Group& g : groups)
    if (g.uniform()) out.uniform_groups.push_back(g.id);
  return out;
}

GroupFilter filter_groups(std::span<const double> rewards, std::span<const std::int64_t> group_ids) {
  std::vector<std::size_t> group_of;
  const std::vector<Group> groups = collect_groups(rewards, group_ids, group_of);
  GroupFilter out;
  for (const Group& g : groups) {
    if (g.uniform())
      ++out.dropped_groups;
    else
      out.kept_groups.push_back(g.id);
  }
  for (std::size_t i = 0; i < rewards.size(); ++i) {
    if (groups[group_of[i]].uniform())
      ++out.dropped_completions;
    else
      out.kept_completions.push_back(static_cast<std::int64_t>(i));
  }
  return out;
}

GrpoNormaliser grpo_normaliser(const GrpoTokens& batch, const GrpoConfig& config) {
  check_shapes(batch, config);
  GrpoNormaliser n;
  for (const double len : loss_tokens(batch, config).length) {
    n.tokens += len;
    n.completions += len > 0;
  }
  return n;
}

GrpoStats& GrpoStats::operator+=(const GrpoStats& o) {
  loss += o.loss;
  tokens += o.tokens;
  ratio_sum += o.ratio_sum;
  kl_sum += o.kl_sum;
  clipped_low += o.clipped_low;
  clipped_high += o.clipped_high;
  is_masked += o.is_masked;
  is_capped += o.is_capped;
  is_weight_sum += o.is_weight_sum;
  return *this;
}

GrpoLoss grpo_loss(const GrpoTokens& batch, const GrpoNormaliser& norm, const GrpoConfig& config) {
  check_shapes(batch, config);
  const std::size_t T = batch.completion.size();
  const LossTokens lt = loss_tokens(batch, config);
  const GrpoNormaliser local = grpo_normaliser(batch, config);
  R1_CHECK(norm.tokens >= local.tokens && norm.completions >= local.completions, "the normaliser (", norm.tokens,
           " tokens, ", norm.completions, " completions) does not cover this batch (", local.tokens, ", ",
           local.completions, ")");
  // GSPO: each completion's log-ratio, the mean over its loss tokens.
  const std::vector<double> log_seq_ratio = config.ratio == PolicyRatio::sequence
      ? completion_means(lt.completion, batch.logp_new, batch.logp_old, batch.advantages.size())
      : std::vector<double>{};

  GrpoLoss out;
  out.grad_logp_new.assign(T, 0.0);
  out.stats.is_masked = lt.masked;
  out.stats.is_capped = lt.capped;
  const double lo = 1 - config.epsilon_low, hi = 1 + config.epsilon_high, beta = config.beta_kl;
  for (std::size_t t = 0; t < T; ++t) {
    const std::int32_t c = lt.completion[t];
    if (c < 0) continue;
    double weight = 0;  // d loss / d (token loss)
    switch (config.loss_agg) {
      case LossAgg::token_mean: weight = 1 / norm.tokens; break;
      case LossAgg::seq_mean_token_mean: weight = 1 / (norm.completions * lt.length[c]); break;
      case LossAgg::seq_mean_token_sum_norm:
        weight = 1 / (norm.completions * static_cast<double>(config.max_completion_tokens));
        break;
    }
    const double logp = batch.logp_new[t], adv = batch.advantages[c], w = lt.is_weight[t];
    // GSPO's d s_c / d logp_t = s_c / |c|, and weight holds the 1 / |c|: the token form below serves both.
    const double ratio = config.ratio == PolicyRatio::sequence ? std::exp(log_seq_ratio[c])
                                                               : std::exp(logp - static_cast<double>(batch.logp_old[t]));
    const double unclipped = ratio * adv, clipped = std::clamp(ratio, lo, hi) * adv;
    // min() picks the clipped term only where the ratio is outside [lo, hi] on the side the advantage pushes
    // towards; the clamp is flat there, so the surrogate's gradient vanishes.
    const bool clip_active = clipped < unclipped;
    const double surrogate = w * (clip_active ? clipped : unclipped);
    const double d_surrogate = clip_active ? 0.0 : w * unclipped;  // d(ratio * A)/d logp = ratio * A
    if (clip_active) ++(adv > 0 ? out.stats.clipped_high : out.stats.clipped_low);

    double kl = 0, d_kl = 0;
    if (beta != 0) {
      const double log_r = static_cast<double>(batch.logp_ref[t]) - logp;  // d log_r / d logp = -1
      switch (config.kl_estimator) {
        case KlEstimator::k1: kl = -log_r; d_kl = 1; break;
        case KlEstimator::k2: kl = 0.5 * log_r * log_r; d_kl = -log_r; break;
        case KlEstimator::k3: {
          const double r = std::exp(log_r);
          kl = r - log_r - 1;
          d_kl = 1 - r;
          break;
        }
      }
    }
    out.stats.loss += weight * (beta * kl - surrogate);
    out.grad_logp_new[t] = weight * (beta * d_kl - d_surrogate);
    out.stats.tokens += 1;
    out.stats.ratio_sum += ratio;
    out.stats.kl_sum += kl;
    out.stats.is_weight_sum += w;
  }
  return out;
}

std::vector<float> grpo_token_weights(const GrpoTokens& batch, const GrpoNormaliser& norm, const GrpoConfig& config,
                                      GrpoStats* stats) {
  const GrpoLoss loss = grpo_loss(batch, norm, config);
  if (stats) *stats = loss.stats;
  std::vector<float> weights(loss.grad_logp_new.size());
  for (std::size_t t = 0; t < weights.size(); ++t) weights[t] = static_cast<float>(-loss.grad_logp_new[t]);
  return weights;
}

}  // namespace r1
