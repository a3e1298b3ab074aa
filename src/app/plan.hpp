// Planning a run on paper (--dry-run): which parameters each rank holds, and its memory for weights,
// gradients, AdamW states and activations, computed from the model, the layout and the deck.
#pragma once
#include <algorithm>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "config/run_config.hpp"
#include "model/config.hpp"
#include "parallel/mesh.hpp"

namespace r1 {

class Deck;

// printf of up to four numbers: how the planner and the time model write theirs.
std::string numbers_text(const char* format, double a, double b = 0, double c = 0, double d = 0);

// The deck's training settings that decide memory.
struct TrainSettings {
  int compute_bytes = 4;        // an activation, and the compute copy of a weight (fp32: 4; bf16: 2)
  bool compute_copy = false;    // a compute copy beside the FP32 master (precision bf16 and fp8)
  bool fp8 = false;             // precision fp8: E4M3 copies of the linear layers' weights (model/linear.hpp)
  bool fp8_pow2 = false;        // [train] fp8_scale = pow2: the backward's expert dispatch in FP8 too (MoeFfn)
  bool fp8_cache_swiglu = false;  // [train] fp8_cache_swiglu_input: the routed SwiGLU input saved in FP8, h not saved
  int moment_bytes = 4;         // one AdamW moment (optim.moment_precision: fp32 4, bf16 2)
  bool zero1 = true;            // AdamW states sharded over DP (dense) and EDP (routed experts)
  bool sequence_parallel = false;
  std::int64_t micro_batch = 1, seq_len = 256;
  std::int64_t micro_batches = 1;  // per optimizer step and data-parallel replica
  Recompute recompute = Recompute::none;
  PipelineSchedule schedule = PipelineSchedule::one_f_one_b;
  int virtual_stages = 1;
  bool split_weight = false;  // [parallel] split_weight_grad: dualpipev's W passes hold their GEMMs' inputs
  bool overlap_pairs = false;  // [parallel] overlap_chunk_pairs: dualpipev/dualpipe overlap their F/B pairs
  // [train] attention resolves to cuDNN's deterministic backward (auto or cudnn in a build with cuDNN): its
  // workspace holds dP, B H/t S^2 bf16, for one layer at a time (counted as transient on GPU runs).
  bool cudnn_dp_workspace = false;
};
// `data` is the resolved data-parallel size (micro-batches per step = global_batch / (micro_batch x data)).
TrainSettings train_settings(const RunConfig& cfg, std::int64_t data);

// Activation bytes one token leaves saved for the backward of one transformer block on one rank
// (plan.cpp states the formula; docs/running.md repeats it).
double block_activation_bytes(const ModelConfig& c, const parallel::Layout& l, const TrainSettings& s, bool moe,
                              Recompute recompute);
// Of those, the elements saved in FP8 (precision fp8, MLA: the routed copies' dispatched input),
// kFp8Bytes each: an E4M3 byte and its share of the f32 scale of its 1 x 128 tile.
constexpr double kFp8Bytes = 1 + 4.0 / 128;
double fp8_activation_elements(const ModelConfig& c, const parallel::Layout& l, const TrainSettings& s, bool moe,
                               Recompute recompute);

// One pipeline rank's memory (every rank of a stage holds the same). Bytes unless named otherwise.
struct MemoryPlan {
  int stage = 0;
  std::vector<int> chunks;         // model chunks this rank runs (virtual_stages of them interleaved)
  std::int64_t layers = 0, moe_layers = 0;
  bool embedding = false, head = false, mtp = false;
  double dense_params = 0;         // replicated over DP: attention, norms, dense FFN, shared experts, router, vocab
  double expert_params = 0;        // routed experts, replicated over EDP
  double fp8_params = 0;           // precision fp8: the linear layers' weights among them, also held in E4M3
  double weights = 0, grads = 0, optimizer = 0;
  double activations_per_microbatch = 0;  // saved by one micro-batch passing all of this rank's chunks, averaged per chunk
  double in_flight = 0;            // chunk micro-batches held at the peak of the schedule
  // split_weight: chunk micro-batches whose weight GEMMs wait for their W pass at the peak (stage s: s + 1),
  // each holding copies of its linear layers' inputs and output gradients, counted as one micro-batch's
  // saved activations (what the forward saved is mostly those inputs; the gradients are of their size).
  double deferred_w = 0;
  double transient = 0;            // one micro-batch at a time: CE logits, a recomputed block
  double activations = 0;          // activations_per_microbatch x (in_flight + deferred_w) + transient
  // A grpo deck (add_rollout_memory): the rollout's latent KV cache, live while the learner's activations are
  // not (the memory handover of rl/grpo_step), and the frozen reference's weights (beta_kl > 0). 0 otherwise.
  double kv_cache = 0, reference = 0;
  double params() const { return dense_params + expert_params; }
  double total() const { return weights + grads + optimizer + reference + std::max(activations, kv_cache); }
};

// What a grpo deck's rollout holds on each rank. The engine gives each of sampling.max_batch slots the
// cache rows of its sequence's prompt + completion (at most model.max_seq_len); the prompts' length is no
// deck key, so the plan counts sampling.max_new_tokens rows (cut at max_seq_len) per slot: prompts add theirs.
struct RolloutSettings {
  std::int64_t max_batch = 0;  // 0: not a grpo deck
  std::int64_t rows = 0;       // cache rows per slot, and tokens per learner sequence
  bool reference = false;      // grpo.beta_kl > 0: a frozen copy of the weights
  std::int64_t tensor = 1;     // parallel.tensor: a GQA cache holds this rank's K/V heads
};
RolloutSettings rollout_settings(const RunConfig& cfg);
// The learner's settings of a grpo deck: sequences of r.rows tokens, train.micro_batch of them per
// micro-batch, (prompts_per_step x group_size) / (data x micro_batch) micro-batches; packed under
// grpo.micro_tokens, micro_tokens / row rows of row = min(micro_tokens, max_seq_len) tokens per micro-batch,
// as many as the sequences fill; no ZeRO-1 and no sequence parallelism (stages/grpo.cpp's Trainer).
void apply_rollout_settings(const RunConfig& cfg, const RolloutSettings& r, std::int64_t data, TrainSettings& s);
// Adds the rollout's KV cache (this stage's layers x max_batch x rows x the cache row x compute bytes; the
// row is kv_lora_rank + qk_rope_head_dim for MLA, whose latent is replicated over TP, and 2 x head_dim x this
// rank's K/V heads (n_kv_heads / tensor, at least 1) for GQA) and the reference's weights (as the policy's) to `p`.
void add_rollout_memory(const ModelConfig& c, const TrainSettings& s, const RolloutSettings& r, MemoryPlan& p);

// `l` must have `data` resolved (parallel::Mesh::layout()).
MemoryPlan plan_stage_memory(const ModelConfig& c, const parallel::Layout& l, const TrainSettings& s, int stage);

// The per-stage table in GiB, and the assumptions behind it, one line each.
std::string format_memory_table(const std::vector<MemoryPlan>& plans);
std::vector<std::string> memory_assumptions(const ModelConfig& c, const parallel::Layout& l, const TrainSettings& s,
                                            const MemoryPlan& worst);

// Everything --dry-run prints after the resolved deck: model, parameter counts, layout and mesh, the
// memory of every stage (worst marked) and the assumptions, then the time model's prediction on `machine`. The deck must have passed validate_deck,
// which gave `cfg`.
struct Machine;
void print_dry_run(const Deck& deck, const RunConfig& cfg, int world_size, const Machine& machine, std::ostream& out);

}  // namespace r1
