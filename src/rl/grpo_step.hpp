// The update of a GRPO step, after its rollouts (rl/rollout): the kept rollouts packed into micro-batches,
// their log-probs under the policy that sampled them (old) and under the frozen reference, the normaliser
// summed over the data-parallel group, then inner epochs of micro-batch training weighted per token by
// the GRPO loss (rl/grpo), each ending in an optimizer step.
#pragma once
#include <cstdint>
#include <vector>

#include "model/batch.hpp"
#include "rl/grpo.hpp"
#include "rl/rollout.hpp"
#include "train/grad_reducer.hpp"
#include "train/optimizer.hpp"
#include "train/step.hpp"

namespace r1 {

// What a step trains, and the groups its micro-batches span.
struct GrpoLearner {
  Model& policy;
  ParamStore& params;
  GradReducer& grads;
  AdamW& opt;
  const Model* reference = nullptr;  // the frozen reference; null when beta_kl == 0
  parallel::Communicator& dp;
  const kernels::Context& ctx;
  PipelinePlan pipe;
};

// How the rollouts are packed into micro-batches.
struct PackConfig {
  std::int64_t micro = 1;  // rollouts per micro-batch
  std::int32_t pad = 0;
  std::int64_t min_len = 1;  // tokens per row at least (pack's min_len): the tensor-parallel group's size
};

// Packs rollouts [first, last) into a right-padded micro-batch: targets (next tokens) only where the
// next token belongs to the completion; `owner[t]` is the index in `rs` of the rollout a loss token
// belongs to (-1 elsewhere). An empty range packs rows of padding without a loss (an idle micro-batch
// under expert or pipeline parallelism). The batch holds at least `min_rows` rows of at least `min_len`
// tokens (the tensor-parallel ranks split a micro-batch's tokens in the MoE; the pipeline passes
// activations of one shape).
TokenBatch pack(const std::vector<Rollout>& rs, std::size_t first, std::size_t last, std::int32_t pad,
                std::vector<std::int32_t>& owner, std::int64_t min_len, std::int64_t min_rows);

struct GrpoUpdate {
  GrpoStats stats;       // the loss of the last inner epoch, summed over the pipeline stages
  double grad_norm = 0;  // of the last optimizer step
};

// Packs this rank's rollouts, scores them under the old policy and the reference, and trains the policy on
// them for config.inner_epochs optimizer steps at learning rate `lr`. Collective over the data-parallel
// group, and over the model's groups as training is.
GrpoUpdate grpo_step(GrpoLearner& learner, const std::vector<Rollout>& rollouts, const PackConfig& packing,
                     const GrpoConfig& config, double lr);

}  // namespace r1
