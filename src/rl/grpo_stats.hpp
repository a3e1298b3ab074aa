// A GRPO step's statistics as named fields (the rollouts' and the loss's), their one reduction over ranks,
// and the metrics.jsonl record and progress line written from them.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

#include "kernels/context.hpp"
#include "parallel/comm.hpp"
#include "rl/grpo.hpp"
#include "run/metrics.hpp"

namespace r1 {

// Sums over this rank's completions of a step (rl/rollout), all of them unless a field says otherwise.
struct RolloutStats {
  double completions = 0;
  double reward_sum = 0, reward_squares = 0;
  double accuracy = 0, format = 0, language = 0;  // the rule-based rewards: reasoning completions only
  double length_sum = 0;                          // completion tokens
  double truncated = 0;                           // completions cut at the length limit
  double reflections = 0;                         // count_reflection_words
  double entropy = 0;                             // the sampler's entropy at every completion token
  double uniform_groups = 0;                      // groups whose rewards are all equal (zero advantage)
  double generate_s = 0;                          // seconds in generate()
  double reasoning_n = 0, reasoning_sum = 0;      // reasoning completions and their rewards
  double general_n = 0, general_sum = 0;          // general completions (preference steps) and their rewards
  double helpfulness_sum = 0, harmlessness_sum = 0;  // the reward models' raw scores of the general ones
  double length_max = 0;  // this rank's longest completion: a maximum, never summed over ranks
};

// The gap between the rollout's policy and the learner's recompute of it (rl/grpo_step), over every
// completion token but the last (the next-token targets): delta = log pi_old - log pi_rollout, and per MoE layer
// of the trunk the tokens whose set of experts differs between the two forwards.
struct MismatchStats {
  double tokens = 0;
  double abs_sum = 0;     // |delta|
  double k3_sum = 0;      // rho - log rho - 1 with rho = pi_old / pi_rollout: an estimate of KL(rollout || old)
  double over_0_1 = 0;    // tokens with |delta| > 0.1
  double abs_max = 0;     // a maximum: reduced as one
  std::vector<double> routed, rerouted;  // per MoE layer: tokens compared, and those routed differently
  void add(double log_old, double log_rollout);
};

// Everything a step adds up: its rollouts, the rollout/learner gap, and the loss of its last inner epoch
// (rl/grpo_step).
struct GrpoStepStats {
  RolloutStats rollout;
  MismatchStats mismatch;
  GrpoStats loss;
};

// Sums every summed field over a communicator's ranks in one all-reduce of doubles (the integer counts
// travel exactly as doubles); maxima are reduced as maxima.
void sum_over(parallel::Communicator& comm, const kernels::Context& ctx, GrpoStats& stats);
void sum_over(parallel::Communicator& comm, const kernels::Context& ctx, GrpoStepStats& stats);

// Peak bytes the run's allocator held in each phase of a step, weights and optimizer states included: device
// memory on a GPU, host memory on the CPU, from the allocator's own accounting (core/allocator). rollout:
// generation with its KV cache; scoring: the old and reference log-probs; update: the inner epochs.
struct PhaseMemory {
  double rollout = 0, scoring = 0, update = 0;
};

// What a step's record holds besides its statistics.
struct GrpoStepInfo {
  std::int64_t step = 0;
  double lr = 0, grad_norm = 0;
  double step_s = 0;        // this rank's wall time of the step
  int replicas = 1;         // data-parallel ranks (generate_s summed over them is averaged)
  std::int64_t group_size = 1;
  // RL for all scenarios ([grpo] preference_steps > 0): the reasoning and general prompts reported apart.
  bool preference_run = false, preference_step = false;
  bool helpfulness = false, harmlessness = false;  // which reward models score the general prompts
  PhaseMemory memory;  // the largest over the data-parallel group
};

// The step's metrics.jsonl record: means over every completion (the rule-based rewards over the reasoning
// ones, the loss terms over the loss tokens) from the statistics summed over the data-parallel group
// (`all`), and this rank's own generation time and longest completion (`mine`).
nlohmann::json grpo_record(const GrpoStepStats& mine, const GrpoStepStats& all, const GrpoStepInfo& info);

// The progress line of a logged step: `progress` (step, totals, elapsed) with the record's reward and the
// step's tokens per second, then the record's accuracy, format rate, mean length and KL.
std::string grpo_progress_line(const nlohmann::json& record, const GrpoStepStats& all, Progress progress);

}  // namespace r1
