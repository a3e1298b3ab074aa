// The run directory of a phase: the resolved deck, run metadata (run.json), metrics.jsonl, checkpoints.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

#include "run/metrics.hpp"

namespace r1 {

struct RunInfo {
  std::string stage;
  std::string deck_path;
  std::string resolved_deck;  // the deck after presets and --set overrides, as text
  int world_size = 1;
  nlohmann::json layout;      // the parallel layout (tensor, pipeline, data, expert, order, ...)
};

// Rank 0 creates `dir` (and parents), writes deck.resolved.ini and run.json atomically, and opens
// metrics.jsonl for appending; other ranks only record the paths. A restart in the same directory keeps
// the metrics of earlier jobs and records its own start in run.json's "starts" list.
class RunDir {
 public:
  RunDir(const std::string& dir, const RunInfo& info, int rank);
  const std::string& path() const { return dir_; }
  std::string checkpoints() const { return dir_ + "/checkpoints"; }
  MetricsWriter& metrics() { return metrics_; }  // open on rank 0 only

 private:
  std::string dir_;
  MetricsWriter metrics_;
};

// "2026-11-23T13:05:00Z"
std::string utc_timestamp();

}  // namespace r1
