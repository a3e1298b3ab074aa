#include "run/metrics.hpp"

#include <cmath>
#include <cstdio>

#include "core/error.hpp"

namespace r1 {

MetricsWriter::MetricsWriter(const std::string& path) : path_(path), out_(path, std::ios::app) {
  if (!out_) R1_FAIL(io, "cannot open metrics file ", path, " for appending");
}

void MetricsWriter::write(const nlohmann::json& record) {
  out_ << record.dump() << '\n';
  out_.flush();
  if (!out_) R1_FAIL(io, "cannot write to metrics file ", path_, " (disk full?)");
}

std::string format_duration(double s) {
  const long t = std::lround(std::max(0.0, s));
  char buf[32];
  if (t < 60) std::snprintf(buf, sizeof buf, "%lds", t);
  else if (t < 3600) std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
  return buf;
}

std::string format_progress(const Progress& p) {
  std::string line = detail::concat("step ", p.step, "/", p.total_steps, "  ", p.metric_name, " ");
  char num[64];
  std::snprintf(num, sizeof num, "%.4f", p.metric);
  line += num;
  if (p.tokens_per_s >= 1e3) std::snprintf(num, sizeof num, "  %.1fk tok/s", p.tokens_per_s / 1e3);
  else std::snprintf(num, sizeof num, "  %.0f tok/s", p.tokens_per_s);
  line += num;
  if (p.mfu >= 0) {
    std::snprintf(num, sizeof num, "  MFU %.1f%%", 100.0 * p.mfu);
    line += num;
  }
  if (p.steps_done > 0 && p.total_steps > p.step)
    line += "  ETA " + format_duration(p.elapsed_s / p.steps_done * static_cast<double>(p.total_steps - p.step));
  return line;
}

}  // namespace r1
