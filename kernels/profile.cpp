#include "kernels/profile.hpp"

#include <algorithm>
#include <cstdio>
#include <vector>

namespace r1::kernels {

namespace {
struct State {
  bool on = false;
  std::map<std::string, profile::Total> totals;
};
// The open regions of this thread, '/'-joined: the two passes of an overlapped pipeline pair
// (core/interleave.hpp) nest their regions on their own threads.
thread_local std::string path;
State& state() {
  static State s;
  return s;
}
}  // namespace

namespace profile {
void set_enabled(bool on) { state().on = on; }
bool enabled() { return state().on; }

std::map<std::string, Total> take() {
  std::map<std::string, Total> out;
  out.swap(state().totals);
  return out;
}

std::string table(const std::map<std::string, Total>& totals, double step_seconds, std::int64_t steps) {
  std::vector<std::pair<std::string, Total>> rows(totals.begin(), totals.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.seconds > b.second.seconds; });
  const double n = static_cast<double>(std::max<std::int64_t>(1, steps));
  std::string out;
  char line[256];
  for (const auto& [path, t] : rows) {
    std::snprintf(line, sizeof line, "  %-28s %10.3f ms/step %6.1f%% %8.1f calls/step\n", path.c_str(),
                  1e3 * t.seconds / n, step_seconds > 0 ? 100.0 * t.seconds / (n * step_seconds) : 0.0,
                  static_cast<double>(t.calls) / n);
    out += line;
  }
  return out;
}
}  // namespace profile

ProfileRegion::ProfileRegion(const Context& ctx, const char* name) {
  State& s = state();
  if (!s.on) return;
  ctx.synchronize();
  ctx_ = &ctx;
  parent_len_ = path.size();
  if (!path.empty()) path += '/';
  path += name;
  clock_.reset();
}

ProfileRegion::~ProfileRegion() {
  if (ctx_ == nullptr) return;
  ctx_->synchronize();
  State& s = state();
  profile::Total& t = s.totals[path];
  t.seconds += clock_.seconds();
  ++t.calls;
  path.resize(parent_len_);
}

}  // namespace r1::kernels
