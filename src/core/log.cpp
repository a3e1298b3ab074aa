#include "core/log.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace r1 {

Logger& logger() {
  static Logger l;
  return l;
}

void Logger::configure(int rank, int world_size, LogLevel level) {
  rank_ = rank;
  world_size_ = world_size;
  level_ = level;
}

LogLevel parse_log_level(const std::string& s) {
  if (s == "debug") return LogLevel::debug;
  if (s == "info") return LogLevel::info;
  if (s == "warn") return LogLevel::warn;
  if (s == "error") return LogLevel::error;
  R1_FAIL(user, "unknown log level '", s, "' (expected debug, info, warn or error)");
}

void Logger::emit(LogLevel lvl, bool every_rank, const std::string& msg) const {
  if (lvl < level_) return;
  if (!every_rank && rank_ != 0) return;
  static std::mutex mu;
  const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  localtime_r(&now, &tm);
  char ts[16];
  std::strftime(ts, sizeof ts, "%H:%M:%S", &tm);
  static const char* tags[] = {"debug", "info", "warning", "error"};
  std::lock_guard<std::mutex> lock(mu);
  FILE* out = lvl >= LogLevel::warn ? stderr : stdout;
  if (every_rank && world_size_ > 1)
    std::fprintf(out, "[%s] [rank %d] %s: %s\n", ts, rank_, tags[static_cast<int>(lvl)], msg.c_str());
  else if (lvl == LogLevel::info)
    std::fprintf(out, "[%s] %s\n", ts, msg.c_str());
  else
    std::fprintf(out, "[%s] %s: %s\n", ts, tags[static_cast<int>(lvl)], msg.c_str());
  std::fflush(out);
}

void Logger::info(const std::string& m) const { emit(LogLevel::info, false, m); }
void Logger::debug(const std::string& m) const { emit(LogLevel::debug, false, m); }
void Logger::warn(const std::string& m) const { emit(LogLevel::warn, true, m); }
void Logger::error(const std::string& m) const { emit(LogLevel::error, true, m); }

}  // namespace r1
