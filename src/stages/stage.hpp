// What every stage needs to start: the validated deck, this rank's compute context, the mesh and its
// communicators, and the run directory; built before any compute, so bad input fails cleanly.
#pragma once
#include <memory>
#include <string>

#include "deck/deck.hpp"
#include "kernels/context.hpp"
#include "parallel/comm_bundle.hpp"
#include "run/run_dir.hpp"

namespace r1 {
class ParamStore;
class AdamW;
}

namespace r1 {

struct StageEnv {
  const Deck& deck;
  int rank = 0, world = 1;
  kernels::Context ctx;
  DType compute_dtype = DType::f32;
  std::unique_ptr<parallel::CommBundle> comms;
  double peak_flops = 0;  // per device, for MFU (0 on CPUs: no MFU reported)
};

// Chooses the device (a GPU per rank when CUDA devices are visible), the compute precision, the
// communication backend, and builds the mesh. Layouts a stage cannot run yet are refused here.
StageEnv make_stage_env(const Deck& deck, int rank, int world);

// Runs the deck's [run] stage; returns the process exit code.
int run_stage(const Deck& deck, int rank, int world);

int run_pretrain(StageEnv& env);
int run_grpo(StageEnv& env);

// --- shared by the training stages ---

double host_scalar(const Tensor& t);  // an f32[1] tensor's value (synchronises)
// Sums `values` over a communicator's ranks (host doubles through an f64 all-reduce).
void sum_over(parallel::Communicator& comm, const kernels::Context& ctx, std::vector<double>& values);

// Where a stage starts, from [checkpoint] load: nothing; `latest` (a restart of this run resumes
// weights, optimizer and step; a first start finds nothing and starts fresh); or another checkpoint (a
// step directory, or a checkpoints directory whose newest is taken) loaded as load_mode says.
struct Resumed {
  std::int64_t first_step = 1;
  std::string parent;  // lineage: the checkpoint this run's weights come from ("" from scratch)
  std::filesystem::path loaded;  // what was loaded ("" for nothing)
  nlohmann::json data_state;     // the loaded checkpoint's data-loader state (resume)
};
Resumed resume_from_deck(const Deck& deck, const std::string& stage, ParamStore& params, AdamW& opt);

}  // namespace r1
