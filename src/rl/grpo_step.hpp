// The update of a GRPO step, after its rollouts (rl/rollout): the kept rollouts packed into micro-batches,
// their log-probs under the policy that sampled them (old) and under the frozen reference, the normaliser
// summed over the data-parallel group, then the Trainer's step of inner epochs over those micro-batches
// weighted per token by the GRPO loss (rl/grpo), each ending in an optimizer update.
#pragma once
#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "model/batch.hpp"
#include "rl/grpo.hpp"
#include "rl/grpo_stats.hpp"
#include "rl/rollout.hpp"
#include "train/trainer.hpp"

namespace r1 {

// How the rollouts are packed into micro-batches: `micro` rollouts each, one per row padded to the longest
// (pack), or with a token budget (`tokens` > 0, [grpo] micro_tokens) as many whole rollouts, in order, as
// fill rows of `row` tokens one after another (pack_segments), `tokens` / `row` rows at most.
struct PackConfig {
  std::int64_t micro = 1;  // rollouts per micro-batch
  std::int32_t pad = 0;
  std::int64_t min_len = 1;  // tokens per row at least (pack's min_len): the tensor-parallel group's size
  std::int64_t tokens = 0;   // a micro-batch's token budget; 0: `micro` padded rollouts
  std::int64_t row = 0;      // tokens per packed row: min(tokens, [model] max_seq_len)
  std::int64_t rows() const { return std::max<std::int64_t>(1, tokens / row); }
};

// The micro-batches' rollouts, [first, last) each, in order: `micro` rollouts each, or under a token budget
// as many as fill rows() rows of `row` tokens, a rollout never split across rows. A rollout longer than a row
// is an error naming [grpo] micro_tokens.
std::vector<std::pair<std::size_t, std::size_t>> micro_ranges(const std::vector<Rollout>& rs, const PackConfig& c);

// Packs rollouts [first, last) one after another into rows of `len` tokens (the next row when one does not fit),
// each rollout its own segment: attention stays inside it and RoPE positions restart, as in pretrain and SFT
// packing, so every token computes what it does in pack's padded row. A row's tail is padding, a segment of its
// own without a loss. Targets and `owner` as pack's; at least `min_rows` rows.
TokenBatch pack_segments(const std::vector<Rollout>& rs, std::size_t first, std::size_t last, std::int32_t pad,
                         std::vector<std::int32_t>& owner, std::int64_t len, std::int64_t min_rows);

// Packs rollouts [first, last) into a right-padded micro-batch: targets (next tokens) only where the
// next token belongs to the completion; `owner[t]` is the index in `rs` of the rollout a loss token
// belongs to (-1 elsewhere). An empty range packs rows of padding without a loss (an idle micro-batch
// under expert or pipeline parallelism). The batch holds at least `min_rows` rows of at least `min_len`
// tokens (the tensor-parallel ranks split a micro-batch's tokens in the MoE; the pipeline passes
// activations of one shape).
TokenBatch pack(const std::vector<Rollout>& rs, std::size_t first, std::size_t last, std::int32_t pad,
                std::vector<std::int32_t>& owner, std::int64_t min_len, std::int64_t min_rows);

// Where each rollout of a packed micro-batch starts: flat token index of its first token, from `owner` (pack's,
// pack_segments'), whose first entry of rollout i sits at its start + prompt_len - 1. Indexed i - first.
std::vector<std::int64_t> rollout_starts(const std::vector<Rollout>& rs, std::size_t first, std::size_t last,
                                         const std::vector<std::int32_t>& owner);

// Rollouts [first, last)'s routing (Rollout::experts) laid out as pack or pack_segments laid out their tokens in
// `b` (`owner`: theirs): TokenBatch::experts [layers, B S, k], -1 rows where a rollout has no record (its last
// token) and in padding.
std::vector<std::int32_t> pack_experts(const std::vector<Rollout>& rs, std::size_t first, std::size_t last, const TokenBatch& b,
                                       const std::vector<std::int32_t>& owner, std::int64_t layers, std::int64_t k);

// Per MoE layer of `layers_here` (those this rank runs), the tokens with a rollout record in `rollout`
// (pack_experts' layout) added to m.routed, and those the learner's forward sent to another set of experts
// (`learner`: DeviceBatch::experts after a forward of the same batch, i32 [L_moe, B S, k]) to m.rerouted.
void count_rerouted(const std::vector<std::int32_t>& rollout, const Tensor& learner, const std::vector<std::int64_t>& layers_here,
                    MismatchStats& m);

struct GrpoUpdate {
  GrpoStats stats;    // the loss of the last inner epoch, summed over the pipeline stages
  MismatchStats mismatch;  // this rank's rollout/learner gap (the same on every pipeline stage)
  StepResult result;  // the Trainer's step: the last optimizer update's learning rate and gradient norm
  PhaseMemory memory;  // this rank's peaks of scoring and update (rollout: the caller's)
};

// The memory handover between the phases of a step. The rollout's KV cache and the learner's activations
// come in sizes the other phase never asks for, and the caching allocator reuses a freed block only for an
// allocation of the same rounded size, so at a handover (release) its cached blocks go back to the device
// (cudaFree) rather than sit beside the next phase's; scoring and update run the same micro-batch shapes, so
// the update reuses the scoring's blocks as they are. Then the allocator's peak restarts from what is held.
void begin_phase(const kernels::Context& ctx, bool release);
// The most bytes `ctx`'s allocator held since begin_phase.
double phase_peak(const kernels::Context& ctx);

// Packs this rank's rollouts, scores them under the old policy (the trainer's model) and the frozen
// `reference` (null when beta_kl == 0), measures the rollout/learner gap (log-probs; routing of each MoE
// layer), replays the rollouts' routing in every forward and backward under [grpo] routing_replay, and trains the policy on them for config.inner_epochs optimizer
// updates of the trainer's step (begun by the caller). Collective over the data-parallel group, and over
// the model's groups as training is. Scoring begins with a handover from the rollout, and the learner's
// cached blocks are released at the end, before the next rollout (begin_phase).
GrpoUpdate grpo_step(Trainer& trainer, const Model* reference, const std::vector<Rollout>& rollouts, const PackConfig& packing,
                     const GrpoConfig& config);

}  // namespace r1
