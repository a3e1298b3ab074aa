#include "run/run_dir.hpp"

#include <unistd.h>

#include <ctime>
#include <filesystem>

#include "app/version.hpp"
#include "core/error.hpp"
#include "core/file_io.hpp"

namespace fs = std::filesystem;

namespace r1 {

std::string utc_timestamp() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

RunDir::RunDir(const std::string& dir, const RunInfo& info, int rank) : dir_(dir) {
  if (rank != 0) return;
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) R1_FAIL(io, "cannot create the run directory ", dir_, ": ", ec.message());
  write_file_atomic(dir_ + "/deck.resolved.ini", info.resolved_deck);

  nlohmann::json meta;
  const std::string meta_path = dir_ + "/run.json";
  if (fs::exists(meta_path)) meta = nlohmann::json::parse(read_file(meta_path), nullptr, false);
  if (meta.is_discarded() || !meta.is_object()) meta = nlohmann::json::object();
  char host[256] = "?";
  gethostname(host, sizeof host - 1);
  meta["stage"] = info.stage;
  meta["deck"] = info.deck_path;
  meta["version"] = kVersion;
  meta["git_commit"] = kGitCommit;
  meta["cuda"] = kWithCuda;
  meta["world_size"] = info.world_size;
  meta["layout"] = info.layout;
  meta["starts"].push_back({{"time", utc_timestamp()}, {"host", host}, {"world_size", info.world_size}});
  write_file_atomic(meta_path, meta.dump(2) + "\n");
  metrics_ = MetricsWriter(dir_ + "/metrics.jsonl");
}

}  // namespace r1
