// Planning a run on paper (--dry-run): which parameters each rank holds, and its memory for weights,
// gradients, AdamW states and activations, computed from the model, the layout and the deck.
#pragma once
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
  bool compute_copy = false;    // a compute copy beside the FP32 master (precision bf16)
  int moment_bytes = 4;         // one AdamW moment (optim.moment_precision: fp32 4, bf16 2)
  bool zero1 = true;            // AdamW states sharded over DP (dense) and EDP (routed experts)
  bool sequence_parallel = false;
  std::int64_t micro_batch = 1, seq_len = 256;
  std::int64_t micro_batches = 1;  // per optimizer step and data-parallel replica
  Recompute recompute = Recompute::none;
  PipelineSchedule schedule = PipelineSchedule::one_f_one_b;
  int virtual_stages = 1;
};
// `data` is the resolved data-parallel size (micro-batches per step = global_batch / (micro_batch x data)).
TrainSettings train_settings(const RunConfig& cfg, std::int64_t data);

// Activation bytes one token leaves saved for the backward of one transformer block on one rank
// (plan.cpp states the formula; docs/running.md repeats it).
double block_activation_bytes(const ModelConfig& c, const parallel::Layout& l, const TrainSettings& s, bool moe,
                              Recompute recompute);

// One pipeline rank's memory (every rank of a stage holds the same). Bytes unless named otherwise.
struct MemoryPlan {
  int stage = 0;
  std::vector<int> chunks;         // model chunks this rank runs (virtual_stages of them interleaved)
  std::int64_t layers = 0, moe_layers = 0;
  bool embedding = false, head = false, mtp = false;
  double dense_params = 0;         // replicated over DP: attention, norms, dense FFN, shared experts, router, vocab
  double expert_params = 0;        // routed experts, replicated over EDP
  double weights = 0, grads = 0, optimizer = 0;
  double activations_per_microbatch = 0;  // saved by one micro-batch passing all of this rank's chunks, averaged per chunk
  double in_flight = 0;            // chunk micro-batches held at the peak of the schedule
  double transient = 0;            // one micro-batch at a time: CE logits, a recomputed block
  double activations = 0;          // activations_per_microbatch x in_flight + transient
  double params() const { return dense_params + expert_params; }
  double total() const { return weights + grads + optimizer + activations; }
};

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
