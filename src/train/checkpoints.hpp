// Where a training stage starts ([checkpoint] load: from scratch, this run's latest checkpoint, or another
// run's), and its checkpoints: saves when due and at the last step, retention, and the graceful stop
// agreed by every rank on a signal or the time limit.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "checkpoint/checkpoint.hpp"
#include "core/timer.hpp"
#include "config/run_config.hpp"
#include "deck/deck.hpp"
#include "parallel/comm.hpp"
#include "train/optimizer.hpp"

namespace r1 {

// Where a stage starts, from [checkpoint] load: nothing; `latest` (a restart of this run resumes
// weights, optimizer and step; a first start finds nothing and starts fresh); or another checkpoint (a
// step directory, or a checkpoints directory whose newest is taken) loaded as load_mode says.
struct Resumed {
  std::int64_t first_step = 1;
  std::string parent;  // lineage: the checkpoint this run's weights come from ("" from scratch)
  std::filesystem::path loaded;  // what was loaded ("" for nothing)
  nlohmann::json data_state;     // the loaded checkpoint's data-loader state (resume)
  // Tokens trained on before first_step (data_state's tokens_consumed) when this run continues the loaded
  // one's steps; 0 when it starts at step 1.
  std::int64_t tokens_consumed() const;
};
// new_prefix: parameters the loaded checkpoint may lack (a new head on a parent's weights; see load_train_state).
Resumed resume_from_deck(const Deck& deck, const RunConfig& cfg, const std::string& stage, ParamStore& params, AdamW& opt,
                         const std::string& new_prefix = {});

// The checkpoint whose weights a sampling stage reads: what [checkpoint] load names, resolved like
// resume_from_deck does (`latest` of this run, a step directory, or a checkpoints directory's newest);
// empty when there is none.
std::filesystem::path weights_checkpoint(const Deck& deck, const RunConfig& cfg);

// Checkpoints and the graceful stop of a training stage ([checkpoint] every_steps, keep_last, async;
// [run] time_limit_minutes; SIGUSR1/SIGTERM): saves when due and at the last step; at a stop request
// agreed by every rank of `world` (the CommBundle's), saves and tells the caller to exit with kExitRequeue.
class StageCheckpoints {
 public:
  StageCheckpoints(const Deck& deck, const RunConfig& cfg, parallel::Communicator& world, std::string stage, std::string parent,
                   nlohmann::json layout, ParamStore& params, AdamW& opt);
  // After optimizer step `step` of `last`: `tokens` and `data_state` describe the position to resume from.
  // Returns true when the run must stop now (it has just been checkpointed).
  bool after_step(std::int64_t step, std::int64_t last, std::int64_t tokens, const nlohmann::json& data_state);
  void finish();  // waits for an asynchronous save in flight and commits it
  // Before the optimizer overwrites the weights and moments: an asynchronous save's device copies of them,
  // running beside the step's forward and backward, must be done.
  void before_update();
  double elapsed_s() const { return clock_.seconds(); }

 private:
  void save(std::int64_t step, std::int64_t tokens, const nlohmann::json& data_state);
  MPI_Comm world_;
  ckpt::Meta meta_;  // what every checkpoint of the run records (stage, deck, lineage, layout, seed)
  ParamStore& params_;
  AdamW& opt_;
  std::unique_ptr<ckpt::Checkpointer> ckpt_;
  std::int64_t every_;
  double time_limit_s_;
  Stopwatch clock_;
};

}  // namespace r1
