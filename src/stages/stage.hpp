// What every stage needs to start: the validated deck and its typed configuration, this rank's compute
// context, the mesh and its communicators, and the run directory; built before any compute, so bad input
// fails cleanly.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "deck/deck.hpp"
#include "kernels/context.hpp"
#include "parallel/comm_bundle.hpp"
#include "checkpoint/checkpoint.hpp"
#include "core/timer.hpp"
#include "run/run_dir.hpp"
#include "train/pipeline_schedule.hpp"

namespace r1 {
class ParamStore;
class AdamW;
struct OptimizerGroups;
class Model;
struct ModelGroups;
struct TokenBatch;
}

namespace r1 {

struct StageEnv {
  const Deck& deck;     // where each value came from: errors naming the deck line, the resolved deck
  const RunConfig& cfg;  // every section of the deck, typed
  int rank = 0, world = 1;
  kernels::Context ctx;
  DType compute_dtype = DType::f32;
  std::unique_ptr<parallel::CommBundle> comms;
  double peak_flops = 0;  // per device, for MFU (0 on CPUs: no MFU reported)
};

// Chooses the device (a GPU per rank when CUDA devices are visible), the compute precision, the
// communication backend, and builds the mesh (validate_deck has checked that the stage runs its layout).
StageEnv make_stage_env(const Deck& deck, const RunConfig& cfg, int rank, int world);

// Runs the deck's [run] stage; returns the process exit code.
int run_stage(const Deck& deck, const RunConfig& cfg, int rank, int world);

int run_pretrain(StageEnv& env);
int run_grpo(StageEnv& env);
int run_sft(StageEnv& env);  // also distillation: the same stage on a dense student deck
int run_evaluate(StageEnv& env);
int run_reward_model(StageEnv& env);  // a scalar head on the policy: pairwise (Bradley-Terry) or pointwise
int run_rejection_sampling(StageEnv& env);
// Hugging Face conversion (stages/hf_convert.cpp): one rank, CPU, no StageEnv needed.
int run_import_hf(const Deck& deck, const RunConfig& cfg, int rank, int world);
int run_export_hf(const Deck& deck, const RunConfig& cfg, int rank, int world);

// --- shared by the training stages ---

// The batch of one optimizer step: micro-batches of `micro` rows of `seq` tokens on each of `replicas`
// data-parallel ranks, `global` rows in all ([train] global_batch, 0: one micro-batch per replica).
struct BatchPlan {
  std::int64_t seq = 0, micro = 0, replicas = 1, global = 0, n_micro = 0;
  bool full_recompute = false;  // [train] recompute = full
  static BatchPlan from_config(const RunConfig& cfg, std::int64_t replicas);
};

double host_scalar(const Tensor& t);  // an f32[1] tensor's value (synchronises)
// Sums `values` over a communicator's ranks (host doubles through an f64 all-reduce).
void sum_over(parallel::Communicator& comm, const kernels::Context& ctx, std::vector<double>& values);
// The largest `value` over a communicator's ranks (comm null: value itself).
std::int64_t max_over(parallel::Communicator* comm, const kernels::Context& ctx, std::int64_t value);

// Where a stage starts, from [checkpoint] load: nothing; `latest` (a restart of this run resumes
// weights, optimizer and step; a first start finds nothing and starts fresh); or another checkpoint (a
// step directory, or a checkpoints directory whose newest is taken) loaded as load_mode says.
struct Resumed {
  std::int64_t first_step = 1;
  std::string parent;  // lineage: the checkpoint this run's weights come from ("" from scratch)
  std::filesystem::path loaded;  // what was loaded ("" for nothing)
  nlohmann::json data_state;     // the loaded checkpoint's data-loader state (resume)
};
// new_prefix: parameters the loaded checkpoint may lack (a new head on a parent's weights; see load_train_state).
Resumed resume_from_deck(const Deck& deck, const RunConfig& cfg, const std::string& stage, ParamStore& params, AdamW& opt,
                         const std::string& new_prefix = {});

// Checkpoints and the graceful stop of a training stage ([checkpoint] every_steps, keep_last, async;
// [run] time_limit_minutes; SIGUSR1/SIGTERM): saves when due and at the last step; at a stop request
// agreed by every rank, saves and tells the caller to exit with kExitRequeue.
class StageCheckpoints {
 public:
  StageCheckpoints(const Deck& deck, const RunConfig& cfg, std::string stage, std::string parent, nlohmann::json layout,
                   ParamStore& params, AdamW& opt);
  // After optimizer step `step` of `last`: `tokens` and `data_state` describe the position to resume from.
  // Returns true when the run must stop now (it has just been checkpointed).
  bool after_step(std::int64_t step, std::int64_t last, std::int64_t tokens, const nlohmann::json& data_state);
  void finish();  // waits for an asynchronous save in flight and commits it
  double elapsed_s() const { return clock_.seconds(); }

 private:
  void save(std::int64_t step, std::int64_t tokens, const nlohmann::json& data_state);
  const Deck& deck_;
  const RunConfig& cfg_;
  std::string stage_, parent_;
  nlohmann::json layout_;
  ParamStore& params_;
  AdamW& opt_;
  std::unique_ptr<ckpt::Checkpointer> ckpt_;
  std::int64_t every_;
  double time_limit_s_;
  Stopwatch clock_;
};
// The checkpoint whose weights a sampling stage reads: what [checkpoint] load names, resolved like
// resume_from_deck does (`latest` of this run, a step directory, or a checkpoints directory's newest);
// empty when there is none.
std::filesystem::path weights_checkpoint(const Deck& deck, const RunConfig& cfg);

// What one optimizer step's micro-batches add up to over the data-parallel group (and the pipeline).
struct StepSums {
  double loss_sum = 0, mtp_loss_sum = 0, balance_loss = 0;  // cross-entropy sums; balance already weighted
  std::vector<std::vector<std::int64_t>> expert_counts;     // per MoE layer of this rank: tokens per expert
  std::vector<std::vector<std::int64_t>> model_expert_counts;  // the same for every MoE layer of the model
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
  static PipelinePlan from_env(const StageEnv& env);
};
// Per-token loss weights of micro-batch `micro` from its forward's per-token cross-entropies
// (Model::token_losses): f32 [T] in the model's memory, d(loss)/d(token's cross-entropy), e.g. GRPO's.
// Called where the head runs (under pipeline parallelism: on the last stage only), after the forward.
using TokenWeights = std::function<Tensor(std::size_t micro, const Tensor& token_losses)>;
// Forward and backward of this replica's micro-batches (through the pipeline schedule when `pipe` has
// more than one stage), gradients then summed over their replicas by opt.reduce_gradients() (next-token
// training: pretrain, sft); losses and expert counts summed over `dp` and the pipeline.
// token_weight = 1 / counted tokens of the global batch; balance_weight = 1 / micro-batches of the global batch.
// With `weights`, the tokens weigh what it returns instead (token_weight then weighs MTP's tokens); under
// pipeline parallelism every micro-batch must then have the same shape (the activations passed between stages).
StepSums train_micro_batches(Model& model, const std::vector<TokenBatch>& batches, float token_weight,
                             float balance_weight, AdamW& opt, parallel::Communicator& dp, const kernels::Context& ctx,
                             const PipelinePlan& pipe = {}, const TokenWeights& weights = {});
// The optimizer's and the model's view of this rank's groups (the stage's communicators), and the layout
// as run metadata and checkpoints record it.
// zero1: [parallel] zero1 as the deck says, or false for stages that keep whole AdamW states.
OptimizerGroups optimizer_groups(const StageEnv& env, bool zero1 = true);
ModelGroups model_groups(const StageEnv& env);
nlohmann::json layout_json(const StageEnv& env);
// The expert load of a step for metrics.jsonl (per layer: max/mean and the counts) and its worst layer.
struct ExpertLoad {
  double worst = 0;  // max over MoE layers of max expert load / mean expert load
  nlohmann::json layers = nlohmann::json::array();
};
ExpertLoad expert_load(const std::vector<std::vector<std::int64_t>>& counts);

}  // namespace r1
