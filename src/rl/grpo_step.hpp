// The update of a GRPO step, after its rollouts (rl/rollout): the kept rollouts packed into micro-batches,
// their log-probs under the policy that sampled them (old) and under the frozen reference, the normaliser
// summed over the data-parallel group, then the Trainer's step of inner epochs over those micro-batches
// weighted per token by the GRPO loss (rl/grpo), each ending in an optimizer update.
#pragma once
#include <cstdint>
#include <vector>

#include "model/batch.hpp"
#include "rl/grpo.hpp"
#include "rl/grpo_stats.hpp"
#include "rl/rollout.hpp"
#include "train/trainer.hpp"

namespace r1 {

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

// Rollouts [first, last)'s routing (Rollout::experts) laid out as pack lays out their tokens in `b`:
// TokenBatch::experts [layers, B S, k], -1 rows where a rollout has no record (its last token) and in padding.
std::vector<std::int32_t> pack_experts(const std::vector<Rollout>& rs, std::size_t first, std::size_t last, const TokenBatch& b,
                                       std::int64_t layers, std::int64_t k);

// Per MoE layer of `layers_here` (those this rank runs), the tokens with a rollout record in `rollout`
// (pack_experts' layout) added to m.routed, and those the learner's forward sent to another set of experts
// (`learner`: DeviceBatch::experts after a forward of the same batch, i32 [L_moe, B S, k]) to m.rerouted.
void count_rerouted(const std::vector<std::int32_t>& rollout, const Tensor& learner, const std::vector<std::int64_t>& layers_here,
                    MismatchStats& m);

struct GrpoUpdate {
  GrpoStats stats;    // the loss of the last inner epoch, summed over the pipeline stages
  MismatchStats mismatch;  // this rank's rollout/learner gap (the same on every pipeline stage)
  StepResult result;  // the Trainer's step: the last optimizer update's learning rate and gradient norm
};

// Packs this rank's rollouts, scores them under the old policy (the trainer's model) and the frozen
// `reference` (null when beta_kl == 0), measures the rollout/learner gap (log-probs; routing of each MoE
// layer), replays the rollouts' routing in every forward and backward under [grpo] routing_replay, and trains the policy on them for config.inner_epochs optimizer
// updates of the trainer's step (begun by the caller). Collective over the data-parallel group, and over
// the model's groups as training is.
GrpoUpdate grpo_step(Trainer& trainer, const Model* reference, const std::vector<Rollout>& rollouts, const PackConfig& packing,
                     const GrpoConfig& config);

}  // namespace r1
