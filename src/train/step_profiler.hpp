// StepProfiler, [log] profile_steps = first, last: the region profiler (kernels/profile.hpp) is on for
// those optimizer steps; after the last of them (or the run's last step) rank 0 logs the breakdown per
// step and writes it to RUN_DIR/profile.json: {"steps": [first, last], "step_ms", "regions": {path:
// {"ms_per_step", "share", "calls_per_step"}}} (written whole, by rename).
// Regions synchronise the device, so profiled steps run slightly slower than the others.
#pragma once
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "core/log.hpp"
#include "config/run.hpp"
#include "kernels/profile.hpp"

namespace r1 {

class StepProfiler {
 public:
  explicit StepProfiler(const LogConfig& log) {
    const auto& range = log.profile_steps;
    if (range.size() == 2) {
      first_ = range[0];
      last_ = range[1];
    }
  }
  void before_step(std::int64_t step) {
    if (step < first_ || step > last_ || kernels::profile::enabled()) return;
    kernels::profile::take();
    kernels::profile::set_enabled(true);
    from_ = step;
  }
  void after_step(std::int64_t step, bool last_step, double step_seconds, const std::string& run_dir, int rank) {
    if (!kernels::profile::enabled()) return;
    seconds_ += step_seconds;
    ++steps_;
    if (step < last_ && !last_step) return;
    kernels::profile::set_enabled(false);
    const auto totals = kernels::profile::take();
    const double per_step = seconds_ / static_cast<double>(steps_);
    if (rank == 0) {
      log_info("profile of steps ", from_, "-", step, " (", 1e3 * per_step, " ms per step with region syncs):\n",
               kernels::profile::table(totals, per_step, steps_));
      nlohmann::json regions = nlohmann::json::object();
      for (const auto& [path, t] : totals)
        regions[path] = {{"ms_per_step", 1e3 * t.seconds / static_cast<double>(steps_)},
                         {"share", t.seconds / seconds_},
                         {"calls_per_step", static_cast<double>(t.calls) / static_cast<double>(steps_)}};
      const nlohmann::json doc = {{"steps", {from_, step}}, {"step_ms", 1e3 * per_step}, {"regions", regions}};
      const std::filesystem::path out = std::filesystem::path(run_dir) / "profile.json";
      std::ofstream(out.string() + ".tmp") << doc.dump(2) << "\n";
      std::filesystem::rename(out.string() + ".tmp", out);
    }
  }

 private:
  std::int64_t first_ = -1, last_ = -2, from_ = 0, steps_ = 0;
  double seconds_ = 0.0;
};

}  // namespace r1
