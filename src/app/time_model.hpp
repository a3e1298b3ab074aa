// The planner's time model (--dry-run, docs/performance.md "Predicting time"): a training step's time on
// a machine from the model's FLOPs, the layout's communication volumes and the pipeline schedule's
// bubble, with efficiencies calibrated on this project's own measurements; then tokens/s per GPU, MFU
// and GPU-hours.
#pragma once
#include <string>
#include <vector>

#include "app/plan.hpp"

namespace r1 {

// One GPU of a machine and its links. Bandwidths are per GPU and per direction.
struct Machine {
  std::string name;
  double peak_bf16 = 0, peak_fp8 = 0;  // dense tensor-core FLOP/s
  double hbm = 0;                      // bytes/s
  double nvlink = 0;                   // to a GPU of the same node
  double network = 0;                  // to other nodes (the GPU's share of the node's NICs)
  int gpus_per_node = 8;
  // Calibration: shares of the peaks the step reaches, from measurements (docs/performance.md).
  double compute_eff = 0.455;  // forward + backward FLOPs / (peak x time): bench step, one H100
  double memory_eff = 0.84;    // AdamW's streaming kernels: 2.8 of 3.35 TB/s on one H100
  double comm_eff = 0.75;      // collectives' bus bandwidth over the link's
};

// h100, h800 or h200 (published peaks and links, the calibration above), or a site file
// (jobscripts/sites/*.env) whose R1HPC_GPU_* lines override the preset named by R1HPC_GPU (default h100).
// An unknown name or a bad line is a user error naming it.
Machine machine_named(const std::string& name_or_site_file);

// dualpipev: the V-shaped variant, with W inside B or (dualpipev_w, [parallel] split_weight_grad) split off into
// the bubbles; dualpipe, dualpipe_w: the bidirectional schedule (two copies of the stages, W inside B or split
// off); with TrainSettings::overlap_pairs ([parallel] overlap_chunk_pairs) these four hide the EP all-to-alls
// behind their overlapped forward/backward pairs. dualpipe_overlap: DeepSeek-V3's DualPipe, dualpipe_w with the
// pairs overlapped whatever the deck says (the deck's own schedule when it runs dualpipe + W + pairs).
enum class Schedule { one_f_one_b, interleaved, dualpipev, dualpipev_w, dualpipe, dualpipe_w, dualpipe_overlap };

// The share of the passes that run as overlapped forward/backward pairs on the rank with the fewest, for a dual
// schedule over `stages` ranks and `micro_batches` per step (pipeline_program's pairs); 0 for the others.
double paired_share(Schedule schedule, int stages, std::int64_t micro_batches);

// What one optimizer step costs on the worst pipeline stage, in seconds.
struct StepTime {
  Schedule schedule = Schedule::one_f_one_b;
  bool fp8 = false;
  double forward = 0, backward = 0;          // compute of all micro-batches
  double tp = 0, ep = 0, pp = 0;             // communication left exposed, all micro-batches
  double ep_total = 0;                       // the expert all-to-alls before any overlap
  double bubble = 0, dp = 0, optimizer = 0;  // pipeline idle; data-parallel reduction left exposed; AdamW
  double step = 0;
  double tokens_per_s_per_gpu = 0, mfu = 0;  // MFU against the BF16 peak
};

StepTime predict_step(const ModelConfig& c, const parallel::Layout& l, const TrainSettings& s, const MemoryPlan& worst,
                      const Machine& m, Schedule schedule, bool fp8);

// The --dry-run section: the deck's schedule and precision, the alternatives beside it, GPU-hours for
// `steps` steps and per trillion tokens, and the model's assumptions.
std::vector<std::string> time_report(const ModelConfig& c, const parallel::Layout& l, const TrainSettings& s,
                                     const MemoryPlan& worst, const Machine& m, std::int64_t steps);

}  // namespace r1
