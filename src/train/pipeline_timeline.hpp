// The executed pipeline timeline of one rank as JSON lines, one per step of its program, for
// tools/pipeline_timeline.py to draw and measure ([parallel] timeline; docs/parallel.md).
#pragma once
#include <filesystem>
#include <fstream>
#include <string>

#include "train/pipeline_schedule.hpp"

namespace r1 {

// Appends to `path` (its directory is created), so a resumed job keeps the earlier jobs' timelines; each
// job's lines carry the UTC time it opened the file ("job"), each schedule run its index in the job ("run").
// Every line names the schedule, the pipeline rank, the data-parallel replica, the kind of step (F or B
// with its micro-batch and chunk; "wait" for an exchange, with its peer and the tensors it moved) and its
// start and end in seconds since the schedule started; a last line per run ("kind": "run") holds
// busy_s, wall_s and the measured and ideal bubble.
class TimelineLog {
 public:
  TimelineLog(const std::filesystem::path& path, int pp_rank, int replica);
  void write(PipelineSchedule s, int stages, int virtual_stages, int micro_batches, const PipelineReport& report);
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::ofstream out_;
  std::string job_;
  int pp_rank_ = 0, replica_ = 0, runs_ = 0;
};

// Where [parallel] timeline puts world rank `rank`'s lines: <output_dir>/pipeline_timeline/rank-<rank>.jsonl.
std::filesystem::path timeline_path(const std::string& output_dir, int rank);

}  // namespace r1
