// The Trainer's divergence guard on real ranks: a NaN written into one rank's AdamW moment makes that
// rank's update non-finite; every rank agrees on it at that step and the diverged state never reaches a
// commit. Under train.divergence_policy = stop the step ends with ErrorKind::diverged and the newest
// checkpoint is the step before; under skip that checkpoint is reloaded (weights equal to it) and the run
// goes on to its last step.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.hpp"
#include "core/error.hpp"
#include "deck/validate.hpp"
#include "stages/stage.hpp"
#include "train/trainer.hpp"
#include "support/world.hpp"

using namespace r1;
namespace fs = std::filesystem;

namespace {

using test::world_rank;
using test::world_size;

// A fresh directory, the same on every rank.
fs::path scratch(const std::string& name) {
  long id = static_cast<long>(::getpid());
  MPI_Bcast(&id, 1, MPI_LONG, 0, MPI_COMM_WORLD);
  const fs::path dir = fs::temp_directory_path() / ("divergence_guard_test_" + std::to_string(id)) / name;
  if (world_rank() == 0) {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  return dir;
}

constexpr const char* kDeck = R"([run]
stage = pretrain
seed = 7
max_steps = 4
[model]
preset = tiny
max_seq_len = 32
[data]
source = synthetic
seq_len = 16
[optim]
lr = 1e-3
warmup_steps = 0
[train]
micro_batch = 2
log_every = 1
[checkpoint]
every_steps = 1
)";

// A deck, its configuration and the stage environment on this rank, kept alive together.
struct TestRun {
  Deck deck;
  RunConfig cfg;
  StageEnv env;
  TestRun(const fs::path& dir, const std::vector<std::string>& sets)
      : deck(Deck::parse(kDeck, (dir / "test.deck").string(), with_dir(dir, sets))),
        cfg(validate_deck(deck, world_size())),
        env(make_stage_env(deck, cfg, world_rank(), world_size())) {}
  static std::vector<std::string> with_dir(const fs::path& dir, std::vector<std::string> sets) {
    sets.push_back("run.output_dir=" + (dir / "run").string());
    return sets;
  }
  TrainerOptions options() const {
    TrainerOptions o = TrainerOptions::from_env(env, "pretrain");
    o.steps = cfg.run.max_steps;
    return o;
  }
};

// This rank's micro-batch: a fixed token pattern, offset by the rank.
TokenBatch batch() {
  TokenBatch b{.batch = 2, .seq = 16};
  for (std::int64_t i = 0; i < b.batch * b.seq; ++i) b.ids.push_back(static_cast<std::int32_t>((i * 7 + world_rank()) % 200));
  b.targets.assign(b.ids.begin() + 1, b.ids.end());
  b.targets.push_back(-1);
  return b;
}

// One step; at step `poison` rank 0 first writes a NaN into the first moment of its first parameter.
bool run_step(Trainer& t, std::int64_t step, std::int64_t poison) {
  t.begin_step(step);
  if (step == poison && world_rank() == 0) t.optimizer().exp_avg().front().data<float>()[0] = std::numeric_limits<float>::quiet_NaN();
  const TokenBatch b = batch();
  const StepResult r = t.step({b}, static_cast<double>(b.counted() * world_size()));
  return t.end_step(r, {.record = {{"loss", r.loss}}, .metric = r.loss});
}

std::vector<float> first_weights(Trainer& t) {
  const Tensor& w = t.params().all().front()->master;
  return {w.data<float>(), w.data<float>() + w.numel()};
}

fs::path newest(const fs::path& dir) { return ckpt::latest(dir / "run" / "checkpoints").value_or(fs::path{}); }

}  // namespace

TEST(DivergenceGuard, NanInOneRanksMomentStopsEveryRankBeforeTheCommit) {
  const fs::path dir = scratch("stop");
  {
    TestRun run(dir, {});
    Trainer t(run.env, run.options());
    for (std::int64_t s = 1; s <= 2; ++s) EXPECT_FALSE(run_step(t, s, -1));
    bool diverged = false;
    try {
      run_step(t, 3, 3);
    } catch (const Error& e) {
      diverged = e.kind() == ErrorKind::diverged;
      EXPECT_NE(std::string(e.what()).find("step 3: the update left non-finite weights"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(diverged) << "rank " << world_rank() << " did not stop";
  }
  EXPECT_EQ(newest(dir).filename(), "step-00000002");
  EXPECT_FALSE(fs::exists(dir / "run" / "checkpoints" / "step-00000003"));
  // A restart resumes the committed step's weights (the Trainer checks them finite as it starts).
  TestRun again(dir, {"checkpoint.load=latest"});
  const Trainer resumed(again.env, again.options());
  EXPECT_EQ(resumed.first_step(), 3);
}

TEST(DivergenceGuard, SkipReloadsTheLastCheckpointAndGoesOn) {
  const fs::path dir = scratch("skip");
  TestRun run(dir, {"train.divergence_policy=skip"});
  Trainer t(run.env, run.options());
  for (std::int64_t s = 1; s <= 2; ++s) EXPECT_FALSE(run_step(t, s, -1));
  const std::vector<float> good = first_weights(t);
  EXPECT_FALSE(run_step(t, 3, 3));
  EXPECT_EQ(first_weights(t), good) << "the weights are not step 2's again";
  for (float v : first_weights(t)) ASSERT_TRUE(std::isfinite(v));
  EXPECT_FALSE(run_step(t, 4, -1));
  t.finish();
  EXPECT_EQ(newest(dir).filename(), "step-00000004");
  for (float v : first_weights(t)) ASSERT_TRUE(std::isfinite(v));
  EXPECT_NE(first_weights(t), good) << "step 4 did not train";
}
