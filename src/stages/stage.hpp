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

}  // namespace r1
