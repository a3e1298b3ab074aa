// StageEnv: what every stage runs in (the validated deck, this rank's compute context, the mesh's
// communicators), made by stages/stage.cpp before any compute; and the run directory a stage opens in it.
#pragma once
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "core/dtype.hpp"
#include "config/run_config.hpp"
#include "deck/deck.hpp"
#include "kernels/context.hpp"
#include "parallel/comm_bundle.hpp"
#include "run/run_dir.hpp"

namespace r1 {

struct StageEnv {
  const Deck& deck;     // provenance: errors naming the deck line, the resolved text
  const RunConfig& cfg;  // every section of the deck, typed
  int rank = 0, world = 1;
  kernels::Context ctx;
  DType compute_dtype = DType::f32;
  std::unique_ptr<parallel::CommBundle> comms;
  double peak_flops = 0;  // per device, for MFU (0 on CPUs: no MFU reported)
};

// The layout as run metadata and checkpoints record it: the data, tensor, pipeline and expert group sizes.
nlohmann::json layout_json(const StageEnv& env);

// The stage's run directory ([run] output_dir): the resolved deck, run.json with the layout, metrics.jsonl.
RunDir open_run_dir(const StageEnv& env, const std::string& stage);

}  // namespace r1
