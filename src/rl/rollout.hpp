// A GRPO step's rollouts, prompts -> completions -> rewards -> advantages: this rank's prompts (reasoning
// problems, joined in the preference steps by general prompts), their groups of completions sampled from
// the policy, the rule-based rewards and the reward models' scores, group advantages and dynamic sampling.
#pragma once
#include <cstdint>
#include <vector>

#include "data/reasoning_world.hpp"
#include "data/world_text.hpp"
#include "generate/sampling.hpp"
#include "rl/grpo.hpp"
#include "rl/grpo_stats.hpp"
#include "rl/rewards.hpp"

namespace r1 {

class Model;
class PromptFormat;
class RewardScorer;
class Tokenizer;

// How a step's prompts are drawn, sampled and rewarded (the stage builds it from the deck).
struct RolloutConfig {
  std::int64_t prompts_per_step = 0;  // over every data-parallel rank
  std::int64_t max_steps = 0;
  // RL for all scenarios: in the last preference_steps steps, general_prompts of a step's prompts are
  // general ones, scored by the reward models.
  std::int64_t preference_steps = 0, general_prompts = 0;
  // The prompts' template and the reward models' input layout ([data] chat_template); set, and outliving
  // the config.
  const PromptFormat* format = nullptr;
  const PromptFormat* reward_format = nullptr;
  // The reasoning problems: a file's (data.source = files; problem k of the run is problems[k % size]), or
  // null: the synthetic world's train split, drawn with `mix` ([data] synthetic_levels).
  const std::vector<Problem>* problems = nullptr;
  ProblemMix mix;
  PreferenceWorld preferences;  // the general prompts' world ([data] preference_pairs, preference_label_noise)
  RewardWeights weights;
  double helpfulness_weight = 1, harmlessness_weight = 1;
  SamplingParams sampling;
  std::int64_t max_batch = 1;    // sequences generated together
  std::int64_t score_batch = 1;  // sequences per reward-model forward
  std::int64_t max_seq_len = 0;  // the model's: a reward model's input is cut there

  std::int64_t first_preference_step() const { return max_steps - preference_steps + 1; }
  bool preference_step(std::int64_t step) const { return preference_steps > 0 && step >= first_preference_step(); }
};

// The learned rewards of the general prompts; either may be absent.
struct RewardModels {
  const RewardScorer* helpfulness = nullptr;   // reads the prompt and the final summary
  const RewardScorer* harmlessness = nullptr;  // reads the prompt and the whole response
};

// One sequence to train on: prompt + completion; the loss sits on the completion's tokens.
struct Rollout {
  std::vector<std::int32_t> tokens;
  std::int64_t prompt_len = 0;
  double advantage = 0;
  bool truncated = false;  // cut at the length limit
  // Per completion token: its log-prob under the rollout's own forward (Completion::policy_logprobs); empty in
  // rollouts built by hand (then the step has no rollout/learner gap to measure or correct).
  std::vector<float> policy_logprobs = {};
  // The rollout's routing (Completion::experts: [tokens - 1][L_moe][k]); empty for a dense model or a rollout
  // built by hand.
  std::vector<std::int16_t> experts = {};
};

struct Rollouts {
  std::vector<Rollout> kept;  // the completions trained on: not empty, and under dynamic sampling not in a uniform group
  RolloutStats stats;         // over every completion of the step on this rank
};

// Step `step`'s rollouts on data-parallel rank `replica` of `replicas`: each rank owns whole prompt groups
// (a contiguous share of the step's reasoning and general prompts), and the draws are keyed by global
// prompt index, so the rollouts do not depend on the layout. Collective over the policy's groups as
// generate() is.
Rollouts roll_out(const Model& policy, const Tokenizer& tok, const RewardModels& reward_models, const RolloutConfig& config,
                  const GrpoConfig& grpo, std::int64_t step, int replica, int replicas);

}  // namespace r1
