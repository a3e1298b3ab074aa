#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "core/error.hpp"
#include "core/file_io.hpp"
#include "run/metrics.hpp"
#include "run/run_dir.hpp"

namespace fs = std::filesystem;
using namespace r1;

namespace {
fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("r1hpc_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d;
}
}  // namespace

TEST(FileIo, AtomicWriteReplacesContentAndLeavesNoTempFile) {
  const fs::path d = fresh_dir("atomic");
  fs::create_directories(d);
  const std::string f = (d / "latest").string();
  write_file_atomic(f, "step-00000010\n");
  write_file_atomic(f, "step-00000020\n");
  EXPECT_EQ(read_file(f), "step-00000020\n");
  EXPECT_FALSE(fs::exists(f + ".tmp"));
  EXPECT_THROW(write_file_atomic((d / "no/such/dir/x").string(), "x"), Error);
  EXPECT_THROW(read_file((d / "missing").string()), Error);
  fs::remove_all(d);
}

TEST(Metrics, FormatsTheProgressLine) {
  Progress p{.step = 120, .total_steps = 1000, .metric_name = "loss", .metric = 2.34567, .tokens_per_s = 41234,
             .mfu = 0.314, .elapsed_s = 60, .steps_done = 20};
  EXPECT_EQ(format_progress(p), "step 120/1000  loss 2.3457  41.2k tok/s  MFU 31.4%  ETA 44m00s");
  p.mfu = -1;
  p.tokens_per_s = 512;
  p.steps_done = 0;
  EXPECT_EQ(format_progress(p), "step 120/1000  loss 2.3457  512 tok/s");
  EXPECT_EQ(format_duration(3 * 3600 + 7 * 60 + 5), "3h07m");
  EXPECT_EQ(format_duration(45), "45s");
}

TEST(RunDir, WritesTheDeckMetadataAndAppendsMetricsAcrossRestarts) {
  const fs::path d = fresh_dir("rundir");
  RunInfo info{.stage = "pretrain", .deck_path = "inputs/x.deck", .resolved_deck = "[run]\nstage = pretrain\n",
               .world_size = 4, .layout = {{"tensor", 2}, {"pipeline", 1}, {"data", 2}}};
  for (int job = 0; job < 2; ++job) {
    RunDir run(d.string(), info, 0);
    ASSERT_TRUE(run.metrics().is_open());
    run.metrics().write({{"step", job + 1}, {"loss", 3.0 - job}});
  }
  EXPECT_EQ(read_file((d / "deck.resolved.ini").string()), info.resolved_deck);
  const auto meta = nlohmann::json::parse(read_file((d / "run.json").string()));
  EXPECT_EQ(meta["stage"], "pretrain");
  EXPECT_EQ(meta["layout"]["tensor"], 2);
  EXPECT_EQ(meta["starts"].size(), 2u);
  std::ifstream in(d / "metrics.jsonl");
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    const auto rec = nlohmann::json::parse(line);
    EXPECT_EQ(rec["step"], ++n);
  }
  EXPECT_EQ(n, 2);
  fs::remove_all(d);
}

TEST(RunDir, OtherRanksWriteNothing) {
  const fs::path d = fresh_dir("rundir_rank1");
  RunDir run(d.string(), RunInfo{}, 1);
  EXPECT_FALSE(fs::exists(d));
  EXPECT_FALSE(run.metrics().is_open());
}
