// Per-step metrics: metrics.jsonl (one JSON object per logged step, rank 0) and the human progress line.
#pragma once
#include <nlohmann/json.hpp>

#include <fstream>
#include <string>

namespace r1 {

// Appends one JSON object per line and flushes it, so a crash loses at most the line being written and
// tools can tail the file during a run. Opened in append mode: a resumed run continues the same file.
class MetricsWriter {
 public:
  MetricsWriter() = default;
  explicit MetricsWriter(const std::string& path);
  bool is_open() const { return out_.is_open(); }
  void write(const nlohmann::json& record);

 private:
  std::string path_;
  std::ofstream out_;
};

struct Progress {
  long step = 0;
  long total_steps = 0;
  std::string metric_name = "loss";  // "loss" or "reward"
  double metric = 0;
  double tokens_per_s = 0;
  double mfu = -1;       // fraction; < 0 when not meaningful (CPU)
  double elapsed_s = 0;  // since the phase started (this job)
  long steps_done = 0;   // steps run by this job, for the ETA
};

// "step 120/1000  loss 2.3456  41.2k tok/s  MFU 31.4%  ETA 1h02m"
std::string format_progress(const Progress& p);
std::string format_duration(double seconds);  // "45s", "12m05s", "3h07m"

}  // namespace r1
