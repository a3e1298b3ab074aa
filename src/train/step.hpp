// One optimizer step's passes: the batch plan, the forward and backward of a replica's micro-batches
// (through the pipeline schedule when there is one) with the gradient reduction, and what they add up
// to over the data-parallel group and the pipeline (losses, expert counts, times).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/timer.hpp"
#include "config/run_config.hpp"
#include "model/model.hpp"
#include "train/grad_reducer.hpp"
#include "train/pipeline_schedule.hpp"
#include "train/pipeline_timeline.hpp"

namespace r1 {

struct StageEnv;

// Tokens routed to each expert, per MoE layer.
using ExpertCounts = std::vector<std::vector<std::int64_t>>;

// The batch of one optimizer step: micro-batches of `micro` rows of `seq` tokens on each of `replicas`
// data-parallel ranks, `global` rows in all ([train] global_batch, 0: one micro-batch per replica).
struct BatchPlan {
  std::int64_t seq = 0, micro = 0, replicas = 1, global = 0, n_micro = 0;
  bool full_recompute = false;
  static BatchPlan from_config(const RunConfig& cfg, std::int64_t replicas);
};

// What one optimizer step's micro-batches add up to over the data-parallel group (and the pipeline).
struct StepSums {
  double loss_sum = 0, mtp_loss_sum = 0, balance_loss = 0;  // cross-entropy sums; balance already weighted
  ExpertCounts expert_counts;        // per MoE layer of this rank: tokens per expert
  ExpertCounts model_expert_counts;  // the same for every MoE layer of the model
  double bubble = 0;  // pipeline parallelism: the measured idle share of the schedule (PipelineReport)
  // The step's time breakdown (the device is synchronised at each boundary): forward and backward of every
  // micro-batch, and the data-parallel gradient reduction.
  double compute_s = 0, grad_reduce_s = 0;
};

// Pipeline parallelism as a stage runs it: the pipeline group and [parallel] schedule, virtual_stages.
struct PipelinePlan {
  parallel::Communicator* pp = nullptr;  // null or one rank: no pipeline
  PipelineSchedule schedule = PipelineSchedule::one_f_one_b;
  int virtual_stages = 1;
  bool split_weight = false;  // [parallel] split_weight_grad: backwards defer their weight GEMMs to W passes
  bool overlap_pairs = true;  // [parallel] overlap_chunk_pairs: dualpipev/dualpipe run their F/B pairs overlapped
  std::shared_ptr<Interleave> pair_thread{};  // their second thread, made once per stage (null: one per step)
  std::shared_ptr<TimelineLog> timeline{};  // [parallel] timeline: every schedule run's timeline goes there
  static PipelinePlan from_env(const StageEnv& env);
};

// Per-token loss weights of micro-batch `micro` from its forward's per-token cross-entropies
// (Model::token_losses): f32 [T] in the model's memory, d(loss)/d(token's cross-entropy), e.g. GRPO's.
// Called where the head runs (under pipeline parallelism: on the last stage only), after the forward.
using TokenWeights = std::function<Tensor(std::size_t micro, const Tensor& token_losses)>;

// Forward and backward of this replica's micro-batches (through the pipeline schedule when `pipe` has
// more than one stage), gradients then summed over their replicas by grads.reduce() (started during the
// last micro-batch's backward); losses and expert counts summed over `dp` and the pipeline.
// token_weight = 1 / counted tokens of the global batch; balance_weight = 1 / micro-batches of the global batch.
// With `weights`, the tokens weigh what it returns instead (token_weight then weighs MTP's tokens); under
// pipeline parallelism every micro-batch must then have the same shape (the activations passed between stages).
StepSums train_micro_batches(Model& model, const std::vector<TokenBatch>& batches, float token_weight,
                             float balance_weight, GradReducer& grads, parallel::Communicator& dp, const kernels::Context& ctx,
                             const PipelinePlan& pipe = {}, const TokenWeights& weights = {});

// The end of a step's passes, however they ran: waits for the device (compute_s, since `compute`
// started) and sums the gradients over their replicas (grad_reduce_s).
void finish_passes(const kernels::Context& ctx, GradReducer& grads, const Stopwatch& compute, StepSums& sums);

// Zero counts for every MoE layer this rank holds; add_expert_counts adds a forward's (ForwardResult::
// expert_counts, this rank's MoE layers from `first_moe` on).
ExpertCounts zero_expert_counts(const Model& model);
void add_expert_counts(ExpertCounts& counts, const std::vector<Tensor>& forward_counts, std::size_t first_moe);
// Sums a stage's `values` and `counts` over `comm` in one all-reduce (the counts travel after the values).
void sum_with_counts(parallel::Communicator& comm, const kernels::Context& ctx, std::vector<double>& values,
                     ExpertCounts& counts);

// The expert load of a step for metrics.jsonl (per layer: max/mean and the counts) and its worst layer.
struct ExpertLoad {
  double worst = 0;  // max over MoE layers of max expert load / mean expert load
  nlohmann::json layers = nlohmann::json::array();
};
ExpertLoad expert_load(const ExpertCounts& counts);

}  // namespace r1
