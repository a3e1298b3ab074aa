// Wall-clock timers and a named accumulator for step-time breakdowns.
#pragma once
#include <chrono>
#include <map>
#include <string>

namespace r1 {

class Stopwatch {
 public:
  Stopwatch() : t0_(clock::now()) {}
  void reset() { t0_ = clock::now(); }
  double seconds() const { return std::chrono::duration<double>(clock::now() - t0_).count(); }

 private:
  using clock = std::chrono::steady_clock;
  clock::time_point t0_;
};

// Accumulates seconds per named phase ("forward", "backward", "comm/all_reduce", ...). Device work must
// be synchronised by the caller before stop(), or it is charged to whichever phase waits for it.
class PhaseTimers {
 public:
  void start(const std::string& name) { running_[name].reset(); }
  void stop(const std::string& name) { total_[name] += running_[name].seconds(); }
  void add(const std::string& name, double s) { total_[name] += s; }
  const std::map<std::string, double>& totals() const { return total_; }
  void clear() { total_.clear(); }

 private:
  std::map<std::string, Stopwatch> running_;
  std::map<std::string, double> total_;
};

}  // namespace r1
