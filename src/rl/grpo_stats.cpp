#include "rl/grpo_stats.hpp"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/error.hpp"
#include "run/host_reduce.hpp"

namespace r1 {
namespace {

// Every field a reduction sums, each once and in one order: the all-reduce packs and unpacks through these.
template <class F> void each_summed(GrpoStats& s, F&& f) {
  f(s.loss);
  f(s.tokens);
  f(s.ratio_sum);
  f(s.kl_sum);
  f(s.clipped_low);
  f(s.clipped_high);
  f(s.is_masked);
  f(s.is_capped);
  f(s.is_weight_sum);
}

template <class F> void each_summed(MismatchStats& s, F&& f) {
  for (double* x : {&s.tokens, &s.abs_sum, &s.k3_sum, &s.over_0_1}) f(*x);
  for (double& x : s.routed) f(x);
  for (double& x : s.rerouted) f(x);
}

template <class F> void each_summed(RolloutStats& s, F&& f) {
  for (double* x : {&s.completions, &s.reward_sum, &s.reward_squares, &s.accuracy, &s.format, &s.language, &s.length_sum,
                    &s.truncated, &s.reflections, &s.entropy, &s.uniform_groups, &s.generate_s, &s.reasoning_n,
                    &s.reasoning_sum, &s.general_n, &s.general_sum, &s.helpfulness_sum, &s.harmlessness_sum})
    f(*x);
}

template <class F> void each_summed(GrpoStepStats& s, F&& f) {
  each_summed(s.rollout, f);
  each_summed(s.mismatch, f);
  each_summed(s.loss, f);
}

template <class S> void sum_fields_over(parallel::Communicator& comm, const kernels::Context& ctx, S& s) {
  std::vector<double> values;
  each_summed(s, [&](const auto& x) { values.push_back(static_cast<double>(x)); });
  sum_over(comm, ctx, values);
  std::size_t i = 0;
  each_summed(s, [&](auto& x) {
    if constexpr (std::is_integral_v<std::remove_reference_t<decltype(x)>>) {
      x = std::llround(values[i++]);
    } else {
      x = values[i++];
    }
  });
}

// The rollout/learner gap and the rollout correction's counts: means over the compared tokens and the loss
// tokens, the share of rerouted tokens per MoE layer.
void add_mismatch(const GrpoStepStats& all, nlohmann::json& rec) {
  const MismatchStats& m = all.mismatch;
  const double n = std::max(1.0, m.tokens), T = std::max(1.0, static_cast<double>(all.loss.tokens));
  rec["mismatch_abs_mean"] = m.abs_sum / n;
  rec["mismatch_abs_max"] = m.abs_max;
  rec["mismatch_kl_k3"] = m.k3_sum / n;
  rec["mismatch_over_0_1"] = m.over_0_1 / n;
  nlohmann::json rerouted = nlohmann::json::array();
  for (std::size_t l = 0; l < m.routed.size(); ++l) rerouted.push_back(m.rerouted[l] / std::max(1.0, m.routed[l]));
  rec["rerouted_share"] = rerouted;
  const GrpoStats& l = all.loss;
  rec["is_weight_mean"] = l.is_weight_sum / T;
  rec["is_capped_fraction"] = static_cast<double>(l.is_capped) / T;
  rec["is_masked_fraction"] = static_cast<double>(l.is_masked) / std::max(1.0, static_cast<double>(l.tokens + l.is_masked));
}

}  // namespace

void sum_over(parallel::Communicator& comm, const kernels::Context& ctx, GrpoStats& stats) { sum_fields_over(comm, ctx, stats); }

void MismatchStats::add(double log_old, double log_rollout) {
  const double delta = log_old - log_rollout, rho = std::exp(delta);
  tokens += 1;
  abs_sum += std::abs(delta);
  k3_sum += rho - delta - 1;
  over_0_1 += std::abs(delta) > 0.1;
  abs_max = std::max(abs_max, std::abs(delta));
}

void sum_over(parallel::Communicator& comm, const kernels::Context& ctx, GrpoStepStats& stats) {
  sum_fields_over(comm, ctx, stats);
  std::vector<double> max{stats.mismatch.abs_max};
  max_over(comm, ctx, max);
  stats.mismatch.abs_max = max[0];
}

nlohmann::json grpo_record(const GrpoStepStats& mine, const GrpoStepStats& all, const GrpoStepInfo& info) {
  const RolloutStats& r = all.rollout;
  const GrpoStats& l = all.loss;
  // Means over the completions (N), the loss tokens (T), the reasoning (NR) and the general (NG) completions.
  const double N = r.completions, T = std::max(1.0, static_cast<double>(l.tokens)), NR = std::max(1.0, r.reasoning_n);
  const double NG = r.general_n;
  const double reward_mean = r.reward_sum / N;
  const double reward_std = std::sqrt(std::max(0.0, r.reward_squares / N - reward_mean * reward_mean));
  nlohmann::json rec = {{"step", info.step}, {"reward_mean", reward_mean}, {"reward_std", reward_std},
                        {"accuracy", r.accuracy / NR}, {"format_rate", r.format / NR}, {"language_consistency", r.language / NR},
                        {"response_length_mean", r.length_sum / N}, {"response_length_max_rank0", mine.rollout.length_max},
                        {"truncated_fraction", r.truncated / N}, {"loss", l.loss}, {"ratio_mean", l.ratio_sum / T},
                        {"kl_mean", l.kl_sum / T}, {"clip_fraction", static_cast<double>(l.clipped_low + l.clipped_high) / T},
                        {"uniform_groups", r.uniform_groups}, {"lr", info.lr}, {"grad_norm", info.grad_norm},
                        {"reflection_words_per_response", r.reflections / N},
                        {"entropy", r.entropy / std::max(1.0, r.length_sum)},
                        {"generate_s", mine.rollout.generate_s}, {"step_s", info.step_s},
                        {"rollout_share", mine.rollout.generate_s / std::max(1e-9, info.step_s)},
                        {"generated_tokens_per_s", r.length_sum / std::max(1e-9, r.generate_s / info.replicas)}};
  add_mismatch(all, rec);
  rec["peak_bytes_rollout"] = info.memory.rollout;
  rec["peak_bytes_scoring"] = info.memory.scoring;
  rec["peak_bytes_update"] = info.memory.update;
  if (info.preference_run) {  // RL for all scenarios: the two prompt kinds apart
    rec["preference_step"] = info.preference_step;
    rec["reasoning_reward_mean"] = r.reasoning_sum / NR;
    if (NG > 0) {
      rec["general_prompts"] = NG / info.group_size;
      rec["general_reward_mean"] = r.general_sum / NG;
      if (info.helpfulness) rec["helpfulness_mean"] = r.helpfulness_sum / NG;
      if (info.harmlessness) rec["harmlessness_mean"] = r.harmlessness_sum / NG;
    }
  }
  return rec;
}

std::string grpo_progress_line(const nlohmann::json& record, const GrpoStepStats& all, Progress progress) {
  const auto value = [&](const char* key) { return record.at(key).get<double>(); };
  progress.metric_name = "reward";
  progress.metric = value("reward_mean");
  progress.tokens_per_s = all.rollout.length_sum / std::max(1e-9, value("step_s"));
  progress.mfu = -1;
  return detail::concat(format_progress(progress), "  accuracy ", value("accuracy"), "  format ", value("format_rate"),
                        "  length ", value("response_length_mean"), "  kl ", value("kl_mean"));
}

}  // namespace r1
