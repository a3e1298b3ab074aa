// The sections of reinforcement learning and sampling: [grpo], [reward], [reward_model], [sampling],
// [rejection] and [evaluate].
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "config/keys.hpp"

namespace r1 {

// Per-token estimators of KL(pi_theta || pi_ref), written with r = pi_ref / pi_theta of the sampled token.
enum class KlEstimator {
  k1,  // -log r
  k2,  // (log r)^2 / 2
  k3,  // r - log r - 1 (DeepSeekMath, R1)
};
constexpr auto choice_words(KlEstimator) {
  return std::to_array<ChoiceWord<KlEstimator>>({{"k1", KlEstimator::k1}, {"k2", KlEstimator::k2}, {"k3", KlEstimator::k3}});
}

enum class LossAgg {
  token_mean,               // every loss token of the batch weighs the same (DAPO)
  seq_mean_token_mean,      // each completion's token mean, then the mean over completions (GRPO)
  seq_mean_token_sum_norm,  // each completion's token sum / max_completion_tokens, then the mean (Dr. GRPO)
};
constexpr auto choice_words(LossAgg) {
  return std::to_array<ChoiceWord<LossAgg>>({{"token-mean", LossAgg::token_mean},
                                             {"seq-mean-token-mean", LossAgg::seq_mean_token_mean},
                                             {"seq-mean-token-sum-norm", LossAgg::seq_mean_token_sum_norm}});
}

// Whose reward std divides the advantages when [grpo] adv_std_scale is set.
enum class AdvStdScope { group, batch };
constexpr auto choice_words(AdvStdScope) {
  return std::to_array<ChoiceWord<AdvStdScope>>({{"group", AdvStdScope::group}, {"batch", AdvStdScope::batch}});
}

// What divides r_i - mean(group) in the advantage.
enum class AdvScale {
  group_std,  // the sample std of the completion's own group (GRPO)
  batch_std,  // the sample std of every reward in the batch
  none,       // nothing (Dr. GRPO)
};

// Whose ratio pi_theta / pi_old the clipped surrogate uses.
enum class PolicyRatio {
  token,     // each token's own (GRPO, PPO)
  sequence,  // the completion's length-normalised exp(mean_t(log pi_theta - log pi_old)), clipped per sequence (GSPO)
};
constexpr auto choice_words(PolicyRatio) {
  return std::to_array<ChoiceWord<PolicyRatio>>({{"token", PolicyRatio::token}, {"sequence", PolicyRatio::sequence}});
}

// Importance correction of the gap between the rollout's policy (the engine's log-probs) and the learner's
// old policy (its recompute): rho = pi_old / pi_rollout.
enum class RolloutCorrection {
  none,
  tis,  // truncated IS: the surrogate weighted by min(rho, C), no gradient through the weight
  mis,  // masked IS: tokens or completions (mis_level) with rho outside [1/C, C] leave the loss
};
constexpr auto choice_words(RolloutCorrection) {
  return std::to_array<ChoiceWord<RolloutCorrection>>(
      {{"none", RolloutCorrection::none}, {"tis", RolloutCorrection::tis}, {"mis", RolloutCorrection::mis}});
}

// What masked IS drops: single tokens, or whole completions by their length-normalised (geometric-mean) rho.
enum class MisLevel { token, sequence };
constexpr auto choice_words(MisLevel) {
  return std::to_array<ChoiceWord<MisLevel>>({{"token", MisLevel::token}, {"sequence", MisLevel::sequence}});
}

#define R1_GRPO_KEYS(KEY)                                                                                              \
  KEY(integer, group_size, 16, (2, 4096), "completions sampled per prompt (G)")                                        \
  KEY(integer, prompts_per_step, 32, (1, 1 << 24), "prompts per optimizer step")                                       \
  KEY(real, epsilon_low, 0.2, (0, 1), "lower clip of the ratio: 1 - epsilon_low")                                      \
  KEY(real, epsilon_high, 0.2, (0, 10), "upper clip of the ratio: 1 + epsilon_high (DAPO: 0.28)")                      \
  KEY(real, beta_kl, 0.001, (0, 10), "weight of the KL penalty to the reference policy; 0: no reference model")        \
  KEY(choice, kl_estimator, KlEstimator::k3, (), "per-token KL estimator (k3: r - log r - 1)")                         \
  KEY(integer, inner_epochs, 1, (1, 64), "optimizer passes over each batch of rollouts (mu)")                          \
  KEY(choice, loss_agg, LossAgg::seq_mean_token_mean, (),                                                              \
      "how per-token losses are averaged (seq-mean-token-sum-norm: Dr. GRPO)")                                         \
  KEY(flag, adv_std_scale, true, (), "divide advantages by a reward std (adv_std_scope says whose; false: Dr. GRPO)")  \
  KEY(choice, adv_std_scope, AdvStdScope::group, (),                                                                   \
      "whose reward std divides the advantages: the completion's group, or the whole batch")                           \
  KEY(flag, dynamic_sampling, false, (), "drop groups whose rewards are all equal and sample more (DAPO)")             \
  KEY(flag, mask_truncated, false, (), "leave completions cut at sampling.max_new_tokens out of the loss")             \
  KEY(integer, ref_refresh_steps, 400, (0, kNoMax), "steps between copies of the policy into the reference; 0: never") \
  KEY(integer, preference_steps, 0, (0, kNoMax),                                                                       \
      "the last steps that add general prompts scored by the [reward] models (R1: the last 400 of 1700); 0: none")     \
  KEY(integer, general_prompts, 0, (0, 1 << 24),                                                                       \
      "of prompts_per_step, the general (non-reasoning) prompts of a preference step")                                  \
  KEY(choice, ratio, PolicyRatio::token, (),                                                                           \
      "importance ratio of the clipped surrogate: per token (GRPO), or per completion, length-normalised (GSPO)")      \
  KEY(choice, rollout_correction, RolloutCorrection::none, (),                                                         \
      "correction of the rollout-vs-learner gap rho = pi_old / pi_rollout: none, tis (weight min(rho, C)), "           \
      "mis (drop what has rho outside [1/C, C])")                                                                      \
  KEY(real, correction_cap, 2.0, (1, 1e6), "C of rollout_correction: the TIS cap and the MIS band [1/C, C]")           \
  KEY(choice, mis_level, MisLevel::sequence, (),                                                                       \
      "what rollout_correction = mis drops: single tokens, or whole completions by their geometric-mean rho")          \
  KEY(flag, routing_replay, false, (),                                                                                 \
      "the learner's forwards and backward route each token to the experts the rollout chose (MoE models)")           \
  KEY(integer, micro_tokens, 0, (0, 1 << 30),                                                                          \
      "learner micro-batch token budget: whole rollouts packed as segments of rows of min(this, model.max_seq_len) "   \
      "tokens; 0: train.micro_batch rollouts per micro-batch, each padded to the longest")

struct GrpoConfig {
  R1_CONFIG_MEMBERS(R1_GRPO_KEYS)
  // Not keys of their own. adv_scale follows adv_std_scale and adv_std_scope, max_completion_tokens (Dr.
  // GRPO's constant normaliser) [sampling] max_new_tokens, when read from a deck.
  AdvScale adv_scale = AdvScale::group_std;
  std::int64_t max_completion_tokens = 256;
  // Added to the std so that a group with one outlying reward does not blow up; equal-reward groups have
  // zero advantages whatever it is.
  double adv_eps = 1e-6;
  bool operator==(const GrpoConfig&) const = default;
};

#define R1_REWARD_KEYS(KEY)                                                                                      \
  KEY(real, accuracy_weight, 1.0, (0, 1e3), "weight of the rule-based answer check")                             \
  KEY(real, format_weight, 1.0, (0, 1e3), "weight of the <think>/<answer> format check")                         \
  KEY(real, language_weight, 0.0, (0, 1e3), "weight of the share of target-language words in the reasoning")     \
  KEY(choice, target_language, "en", ("en", "zh"), "language the reasoning should be written in")                \
  KEY(real, overlong_penalty, 0.0, (0, 1e3), "subtracted from completions cut at sampling.max_new_tokens")       \
  KEY(input, helpfulness_model, "", (),                                                                          \
      "reward_model checkpoint (pairwise) scoring the final summary of general prompts' responses; empty: none") \
  KEY(input, harmlessness_model, "", (),                                                                         \
      "reward_model checkpoint (pointwise) scoring the whole response of general prompts; empty: none")          \
  KEY(real, helpfulness_weight, 1.0, (0, 1e3), "weight of the helpfulness model's score")                        \
  KEY(real, harmlessness_weight, 1.0, (0, 1e3), "weight of the harmlessness model's score")

struct RewardConfig {
  R1_CONFIG_MEMBERS(R1_REWARD_KEYS)
  bool operator==(const RewardConfig&) const = default;
};

enum class RmObjective { pairwise, pointwise };
constexpr auto choice_words(RmObjective) {
  return std::to_array<ChoiceWord<RmObjective>>({{"pairwise", RmObjective::pairwise}, {"pointwise", RmObjective::pointwise}});
}

#define R1_REWARD_MODEL_KEYS(KEY)                                                                                 \
  KEY(choice, objective, RmObjective::pairwise, (), "Bradley-Terry on preference pairs, or regression on labels") \
  KEY(integer, epochs, 1, (1, 10000), "passes over the preference data")

struct RewardModelConfig {
  R1_CONFIG_MEMBERS(R1_REWARD_MODEL_KEYS)
  bool operator==(const RewardModelConfig&) const = default;
};

// How the generation engine fills its batch (generate/engine.hpp).
enum class Batching {
  continuous,  // a slot freed by a finished sequence is refilled at once from the queue; a prompt's samples share its prefill
  static_batch,  // a batch is prefilled, then decoded until its last sequence stops, finished slots left empty
};
constexpr auto choice_words(Batching) {
  return std::to_array<ChoiceWord<Batching>>({{"continuous", Batching::continuous}, {"static", Batching::static_batch}});
}

#define R1_SAMPLING_KEYS(KEY)                                                                                 \
  KEY(real, temperature, 1.0, (0, 100), "softmax temperature; 0: greedy")                                     \
  KEY(real, top_p, 1.0, (0, 1), "nucleus sampling mass; 1: off")                                              \
  KEY(integer, top_k, 0, (0, 1 << 24), "keep the k most likely tokens; 0: off")                               \
  KEY(integer, max_new_tokens, 256, (1, 1 << 24), "longest completion")                                       \
  KEY(integer, samples_per_prompt, 1, (1, 4096), "completions per prompt in evaluate and rejection_sampling") \
  KEY(integer, max_batch, 64, (1, 1 << 20), "sequences decoded together on each rank")                        \
  KEY(choice, batching, Batching::continuous, (),                                                             \
      "continuous: refill a finished sequence's slot at once and prefill a prompt once for all its samples; "  \
      "static: decode each batch until its last sequence stops (the engine before continuous batching)")      \
  KEY(integer, kv_block_size, 16, (0, 1 << 16),                                                               \
      "continuous batching's paged KV cache: tokens per block (memory follows actual lengths; the newest "     \
      "sequences are preempted and resumed when blocks run out); 0: contiguous slots of the longest length")   \
  KEY(integer, kv_cache_tokens, 0, (0, kNoMax),                                                                \
      "tokens the paged KV cache holds per layer (at least one longest sequence); 0: auto, 90% of free "      \
      "device memory on the GPU, 65536 on the CPU")                                                            \
  KEY(integer, prefill_chunk, 0, (0, 1 << 24),                                                                \
      "continuous batching: prefill new prompts in chunks of at most this many tokens (decode-path rows over "  \
      "the cached prefix), each in a decode step's pass (paged cache) or between decode steps (contiguous); "  \
      "0: an admission's prompts in one forward pass")                                                         \
  KEY(flag, cuda_graphs, true, (),                                                                            \
      "on one GPU, run each decode step of a batch small enough for the device-side MoE path "                \
      "(batch x n_activated_experts <= n_routed_experts) as one CUDA graph launch")

struct SamplingConfig {
  R1_CONFIG_MEMBERS(R1_SAMPLING_KEYS)
  bool operator==(const SamplingConfig&) const = default;
};

#define R1_REJECTION_KEYS(KEY)                                                                                        \
  KEY(path, output_path, "", (), "JSONL of accepted samples; empty: <run.output_dir>/sft.jsonl")                      \
  KEY(integer, keep_per_prompt, 1, (1, 4096), "most accepted completions kept per prompt")                            \
  KEY(flag, drop_mixed_language, true, (), "reject completions whose reasoning mixes languages")                      \
  KEY(real, min_language_consistency, 0.9, (0, 1),                                                                    \
      "target-language share of the reasoning's classified words below which it is mixed-language")                   \
  KEY(integer, max_tokens, 0, (0, kNoMax),                                                                            \
      "reject longer completions as overlong; 0: only those cut at sampling.max_new_tokens")                          \
  KEY(integer, repeat_ngram, 4, (1, 1024), "word n-gram length of the repetition check")                              \
  KEY(real, max_repeat_fraction, 0.5, (0, 1), "reject completions whose share of repeated word n-grams exceeds this") \
  KEY(real, non_reasoning_fraction, 0.25, (0, 0.99),                                                                  \
      "share of non-reasoning rows (no chain of thought) in the written dataset (R1: 200k of 800k)")

// Rejection sampling's verdicts (rl/rejection.hpp) and the dataset it writes.
struct RejectionConfig {
  R1_CONFIG_MEMBERS(R1_REJECTION_KEYS)
  bool operator==(const RejectionConfig&) const = default;
};

#define R1_EVALUATE_KEYS(KEY)                                                                            \
  KEY(ints, pass_k, {1}, (1, 4096), "k values reported as pass@k (each <= sampling.samples_per_prompt)") \
  KEY(integer, max_prompts, 0, (0, kNoMax), "evaluate only the first prompts; 0: all")                   \
  KEY(integer, synthetic_prompts, 1000, (1, kNoMax), "held-out problems evaluated when data.source = synthetic")

struct EvaluateConfig {
  R1_CONFIG_MEMBERS(R1_EVALUATE_KEYS)
  bool operator==(const EvaluateConfig&) const = default;
};

}  // namespace r1
