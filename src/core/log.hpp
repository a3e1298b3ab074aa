// Rank-aware logger: progress lines from rank 0, warnings and errors from any rank with its number.
#pragma once
#include <string>

#include "core/error.hpp"

namespace r1 {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3 };

// The process's logger, configured once by main (or a test main) after MPI is up. Logging is the one
// piece of process-wide state: every module may report, and none has to be handed a logger to do so.
class Logger {
 public:
  void configure(int rank, int world_size, LogLevel level);
  int rank() const { return rank_; }
  LogLevel level() const { return level_; }
  // Printed by rank 0 only (the same on every rank by construction).
  void info(const std::string& msg) const;
  void debug(const std::string& msg) const;
  // Printed by whichever rank calls it, prefixed "[rank N]".
  void warn(const std::string& msg) const;
  void error(const std::string& msg) const;
  // Set once a stage is past its start-up checks (identical on every rank): from then on an error may be
  // one rank's alone, so main reports user errors from every rank, not only rank 0.
  void set_computing() { computing_ = true; }
  bool computing() const { return computing_; }

 private:
  void emit(LogLevel lvl, bool every_rank, const std::string& msg) const;
  int rank_ = 0;
  int world_size_ = 1;
  LogLevel level_ = LogLevel::info;
  bool computing_ = false;
};

Logger& logger();
LogLevel parse_log_level(const std::string& s);  // debug|info|warn|error

template <class... A> void log_info(A&&... a) { logger().info(detail::concat(std::forward<A>(a)...)); }
template <class... A> void log_debug(A&&... a) {
  if (logger().level() <= LogLevel::debug) logger().debug(detail::concat(std::forward<A>(a)...));
}
template <class... A> void log_warn(A&&... a) { logger().warn(detail::concat(std::forward<A>(a)...)); }
template <class... A> void log_error(A&&... a) { logger().error(detail::concat(std::forward<A>(a)...)); }

}  // namespace r1
