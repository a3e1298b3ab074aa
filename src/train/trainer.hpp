// Trainer: what every optimizer step of a training stage shares -- the parameters and the model, the
// gradient reduction, AdamW and its learning-rate schedule, the run directory, the checkpoints and the
// step profiler -- around the stage's own data, loss weights and metrics.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/timer.hpp"
#include "model/model.hpp"
#include "run/run_dir.hpp"
#include "run/stage_env.hpp"
#include "train/checkpoints.hpp"
#include "train/divergence_guard.hpp"
#include "train/grad_reducer.hpp"
#include "train/optimizer.hpp"
#include "train/step.hpp"
#include "train/step_profiler.hpp"

namespace r1 {

// The model's groups as the deck splits it ([parallel] tensor, expert, pipeline, virtual_stages,
// sequence_parallel, overlap_expert_comm).
ModelGroups model_groups(const StageEnv& env);

// How a stage sets up its Trainer.
struct TrainerOptions {
  std::string stage{};      // what run.json, the checkpoints and the log lines call the stage
  ModelConfig model{};
  ModelGroups groups{};     // what the model is split over (model_groups(env), or none)
  BatchPlan batch{};        // the step's rows: recomputation, positions per step (tokens/s, MFU)
  std::int64_t steps = 0;   // the last step: the loop's end and the learning-rate schedule's length
  bool zero1 = true;        // [parallel] zero1 applies (false: whole AdamW states on every rank)
  // Each update moves the MoE router bias by the step's expert counts ([model] bias_update_gamma); GRPO
  // keeps the bias it started from (its steps never moved it).
  bool router_bias = true;
  // The stage's own parameters beside the model's (a reward head), added (and frozen where they must
  // be) before the parameters are initialised.
  std::function<void(ParamStore&)> add_params{};
  std::string new_prefix{}; // parameters a loaded checkpoint may lack (resume_from_deck)
  // The deck's model ([model]) split as the deck says, on the deck's batch plan; the stage sets the steps
  // (and what else it does differently).
  static TrainerOptions from_env(const StageEnv& env, std::string stage);
};

// One optimizer step as the Trainer ran it.
struct StepResult {
  std::int64_t step = 0;
  StepSums sums{};
  bool next_token = false;        // the model's own loss on token batches (not a stage's own passes)
  double loss = 0, mtp_loss = 0;  // next-token steps: mean cross-entropies per counted token
  double lr = 0, grad_norm = 0;   // the norm before clipping
  double optimizer_s = 0;         // the update, the router-bias update and the weight check
  double seconds = 0;             // since begin_step, until the update is done
  bool has_loss = false;          // loss is the step's mean cross-entropy (next-token steps)
  WeightState weights{};          // after the update (the weight check of DivergenceGuard)
  // Why the step diverged ("" when it did not), and whether an update of it was applied (the last good
  // state must then be reloaded). end_step stops the run or skips the step ([train] divergence_policy).
  std::string diverged{};
  bool restore = false;
};

// What a stage adds to its step's end.
struct StepReport {
  nlohmann::json record = nlohmann::json::object();  // the stage's own metrics.jsonl fields
  std::string metric_name = "loss";  // the progress line's headline
  double metric = 0;
  std::string extras{};             // the progress line's stage part, after lr and |g|
  std::int64_t tokens = 0;          // the position a checkpoint records: tokens consumed,
  nlohmann::json data_state{};      // and where the stage's data goes on
};

// A stage's whole record and progress line (GRPO's): the Trainer writes them as they are, adding nothing.
struct StageReport {
  nlohmann::json record = nlohmann::json::object();  // the whole metrics.jsonl record
  std::string line{};                                // the whole progress line
  std::int64_t tokens = 0;                           // the position a checkpoint records, as in StepReport
  nlohmann::json data_state{};
};

// A frozen copy of the model (GRPO's reference): the Trainer's configuration split over its groups, with
// weights of its own that no step updates.
struct FrozenModel {
  std::unique_ptr<ParamStore> params;
  std::unique_ptr<Model> model;
  void copy_from(const ParamStore& from);  // takes `from`'s weights
};

// Per-token loss weights per update of a step (an update's index from 0): e.g. GRPO's, whose statistics
// are the last inner epoch's.
using UpdateWeights = std::function<TokenWeights(std::int64_t update)>;

// Builds, initialises and resumes everything at construction ([checkpoint] load); then per step:
// begin_step, one step(...) (the stage's batches in, gradients reduced, clipped and applied), end_step
// (metrics record, progress line, checkpoint, agreed stop); finish() after the last.
class Trainer {
 public:
  Trainer(const StageEnv& env, TrainerOptions options);

  Model& model() { return net_.model; }
  ParamStore& params() { return net_.params; }
  AdamW& optimizer() { return opt_; }  // its moments (tests inject faults there)
  const Resumed& resumed() const { return resumed_; }
  parallel::Communicator& dp() const { return *env_.comms->dp; }
  const kernels::Context& ctx() const { return env_.ctx; }
  const PipelinePlan& pipeline() const { return pipe_; }
  std::int64_t first_step() const { return resumed_.first_step; }
  std::int64_t last_step() const { return options_.steps; }
  // d(loss)/d(balance loss): 1 / micro-batches of the global batch.
  float balance_weight() const;
  // Whether `step` logs its progress line: every [train] log_every steps, the first and the last.
  bool logs(std::int64_t step) const;
  double step_seconds() const { return step_clock_.seconds(); }  // since begin_step
  double elapsed_s() const { return phase_.seconds(); }          // since the Trainer was built
  // A frozen copy of the model with no weights yet: copy_from or load them.
  FrozenModel frozen_model() const;

  // Starts step `step`'s clock (and the profiler on its steps).
  void begin_step(std::int64_t step);
  // Next-token training (pretrain, sft): the mean cross-entropy over the `counted` tokens of the global
  // batch (TokenBatch::counted() summed over the replicas) of this replica's micro-batches.
  StepResult step(const std::vector<TokenBatch>& batches, double counted);
  // With per-token loss weights (GRPO): the tokens weigh what `weights` returns, MTP's tokens
  // token_weight, the balance losses balance_weight.
  StepResult step(const std::vector<TokenBatch>& batches, const TokenWeights& weights, float token_weight,
                  float balance_weight);
  // `updates` optimizer updates over the same micro-batches (GRPO's inner epochs), each a forward and backward
  // with update u's weights; the result is the last update's (its loss sums and gradient norm).
  StepResult step(const std::vector<TokenBatch>& batches, std::int64_t updates, const UpdateWeights& weights,
                  float token_weight, float balance_weight);
  // A stage's own forward and backward passes (a loss the model's head does not compute, e.g. the reward
  // model's): `passes` adds this replica's gradients, expert counts and statistics (into `stage_sums`),
  // which are then summed over the data-parallel replicas, the statistics in the counts' all-reduce.
  using Passes = std::function<void(ExpertCounts& counts)>;
  StepResult step(const Passes& passes, std::vector<double>& stage_sums);
  // Writes the metrics record (rank 0, every [log] metrics_every steps and the last) and the progress
  // line when due, and checkpoints when due. Returns true when the run must stop now (every rank agreed
  // on a signal or the time limit; it has just been checkpointed): exit with kExitRequeue.
  bool end_step(const StepResult& r, const StepReport& report);
  // The same with the stage's whole record and progress line.
  bool end_step(const StepResult& r, const StageReport& report);
  void finish();  // commits a checkpoint in flight; logs the stage's end

 private:
  // The parameters and the model, initialised ([run] seed) with the stage's own parameters.
  struct InitializedModel {
    ParamStore params;
    Model model;
    InitializedModel(const StageEnv& env, const TrainerOptions& o);
  };
  // `updates` forward-backward passes over `batches`, each followed by update(); counted > 0: the mean
  // loss per counted token is the step's (loss spikes are checked on it).
  StepResult train(const std::vector<TokenBatch>& batches, std::int64_t updates, const UpdateWeights& weights,
                   float token_weight, float balance_weight, double counted);
  // Clips and applies the reduced gradients, updates the router bias; after the `last` update of a step,
  // checks the weights (DivergenceGuard). A loss spike or non-finite gradients leave the weights untouched.
  StepResult update(StepSums sums, bool next_token, double counted, bool last);
  // Reloads this run's last committed checkpoint (weights, moments, optimizer step) after the diverged step
  // `what` (train.divergence_policy = skip).
  void restore_last_good(const std::string& what);
  nlohmann::json record(const StepResult& r, nlohmann::json rec, double tokens_per_s, double mfu) const;
  bool records(std::int64_t step) const;  // whether rank 0 writes step's metrics record
  // The step's end after its record and line: the divergence policy, the checkpoint and the agreed stop.
  bool checkpoint(const StepResult& r, std::int64_t tokens, const nlohmann::json& data_state);

  const StageEnv& env_;
  TrainerOptions options_;
  InitializedModel net_;
  GradReducer grads_;
  AdamW opt_;
  LrSchedule schedule_;
  Resumed resumed_;
  RunDir run_;
  StageCheckpoints checkpoints_;
  PipelinePlan pipe_;
  StepProfiler profiler_;
  std::int64_t log_every_, metrics_every_;
  double flops_per_token_;
  DivergenceGuard guard_;
  std::int64_t step_ = 0;
  Stopwatch step_clock_, phase_;
};

}  // namespace r1
