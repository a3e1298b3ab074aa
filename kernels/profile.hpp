// Step-time breakdown by named region, for finding what limits a step. Off by default (a region then costs
// one flag test). When on, a region synchronises its context's device at entry and exit and charges the
// wall time between to its path (nested names joined by '/', e.g. "forward/moe"). On one blocking stream
// per rank that is the device time of the region's kernels plus their launch gaps and host waits; a
// collective inside a region is charged to it. Each thread nests its own regions (the passes of an overlapped
// pipeline pair run on two threads, one at a time); a region open across a hand-over to the other pass
// also holds the other pass's time until it resumes.
#pragma once
#include <map>
#include <string>

#include "core/timer.hpp"
#include "kernels/context.hpp"

namespace r1::kernels {

namespace profile {
void set_enabled(bool on);
bool enabled();
// Seconds and calls by path since the last take(), then cleared.
struct Total {
  double seconds = 0.0;
  std::int64_t calls = 0;
};
std::map<std::string, Total> take();
// One line per path, largest first: "path  ms/step  share of step  calls/step".
std::string table(const std::map<std::string, Total>& totals, double step_seconds, std::int64_t steps);
}  // namespace profile

class ProfileRegion {
 public:
  ProfileRegion(const Context& ctx, const char* name);
  ~ProfileRegion();
  ProfileRegion(const ProfileRegion&) = delete;
  ProfileRegion& operator=(const ProfileRegion&) = delete;

 private:
  const Context* ctx_ = nullptr;  // null when profiling is off
  std::size_t parent_len_ = 0;    // length of the enclosing path
  Stopwatch clock_;
};

}  // namespace r1::kernels
