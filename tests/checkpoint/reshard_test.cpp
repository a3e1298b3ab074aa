// Checkpoints across ranks: slices of one global tensor written by several ranks and read back by a
// different split (resharding), replicated tensors written once, asynchronous saves.
#include <gtest/gtest.h>
#include <mpi.h>
#include <unistd.h>

#include "checkpoint/checkpoint.hpp"
#include "support/world.hpp"

namespace fs = std::filesystem;
using namespace r1;
using namespace r1::ckpt;

namespace {

using test::world_rank;
using test::world_size;

Meta at_step(std::int64_t step) {
  Meta m;
  m.step = step;
  return m;
}

// The same fresh directory on every rank (rank 0's pid names it).
fs::path fresh_dir(const std::string& name) {
  int pid = static_cast<int>(::getpid());
  MPI_Bcast(&pid, 1, MPI_INT, 0, MPI_COMM_WORLD);
  const fs::path d = fs::temp_directory_path() / ("r1hpc_ckpt_" + name + "_" + std::to_string(pid));
  if (world_rank() == 0) fs::remove_all(d);
  MPI_Barrier(MPI_COMM_WORLD);
  return d;
}

// Element (i, j) of the global test tensor `tag`: distinct everywhere, exact in f32.
float value(int tag, std::int64_t i, std::int64_t j) { return static_cast<float>(tag * 10000 + i * 100 + j); }

// The box [r0, r1) x [c0, c1) of global tensor `tag`.
Slice box(const std::string& name, int tag, const Shape& global, std::int64_t r0, std::int64_t r1, std::int64_t c0,
          std::int64_t c1) {
  Tensor t = Tensor::host({r1 - r0, c1 - c0}, DType::f32);
  for (std::int64_t i = r0; i < r1; ++i)
    for (std::int64_t j = c0; j < c1; ++j) t.data<float>()[(i - r0) * (c1 - c0) + (j - c0)] = value(tag, i, j);
  return Slice{name, global, {r0, c0}, t};
}

// Reads the box into a zeroed tensor and checks every element; returns the number of wrong elements.
int check_box(const fs::path& ckpt, const std::string& name, int tag, const Shape& global, std::int64_t r0, std::int64_t r1,
              std::int64_t c0, std::int64_t c1) {
  Tensor t = Tensor::host_zeros({r1 - r0, c1 - c0}, DType::f32);
  load(ckpt, {Slice{name, global, {r0, c0}, t}});
  int wrong = 0;
  for (std::int64_t i = r0; i < r1; ++i)
    for (std::int64_t j = c0; j < c1; ++j) wrong += t.data<float>()[(i - r0) * (c1 - c0) + (j - c0)] != value(tag, i, j);
  return wrong;
}

const Shape kRows{12, 10};  // written as 4 row blocks
const Shape kBlocks{9, 7};  // written as 2 x 2 uneven blocks

// Rank r owns the blocks b with b % size == r (so one rank may own several).
std::vector<Slice> owned_slices() {
  const int rank = world_rank(), size = world_size();
  std::vector<Slice> out;
  for (int b = 0; b < 4; ++b) {
    if (b % size != rank) continue;
    out.push_back(box("model/rows", 1, kRows, 3 * b, 3 * b + 3, 0, 10));
    const std::int64_t r0 = b / 2 == 0 ? 0 : 4, r1 = b / 2 == 0 ? 4 : 9, c0 = b % 2 == 0 ? 0 : 3, c1 = b % 2 == 0 ? 3 : 7;
    out.push_back(box("optim/exp_avg/blocks", 2, kBlocks, r0, r1, c0, c1));
  }
  return out;
}

}  // namespace

TEST(CheckpointReshard, RowBlocksReadBackAsColumnBlocksAndUnevenRows) {
  const fs::path dir = fresh_dir("reshard");
  Checkpointer c(dir, MPI_COMM_WORLD, 0, false);
  c.save(at_step(4), owned_slices());
  const fs::path ckpt = *latest(dir);
  const int rank = world_rank();
  // Two column blocks (ranks alternate), and three uneven row blocks on every rank.
  const std::int64_t c0 = rank % 2 == 0 ? 0 : 4, c1 = rank % 2 == 0 ? 4 : 10;
  EXPECT_EQ(check_box(ckpt, "model/rows", 1, kRows, 0, 12, c0, c1), 0);
  EXPECT_EQ(check_box(ckpt, "model/rows", 1, kRows, 0, 5, 0, 10), 0);
  EXPECT_EQ(check_box(ckpt, "model/rows", 1, kRows, 5, 7, 0, 10), 0);
  EXPECT_EQ(check_box(ckpt, "model/rows", 1, kRows, 7, 12, 0, 10), 0);
  // The 2-D block split read whole, as the transposed split, and as a box straddling all four blocks.
  EXPECT_EQ(check_box(ckpt, "optim/exp_avg/blocks", 2, kBlocks, 0, 9, 0, 7), 0);
  EXPECT_EQ(check_box(ckpt, "optim/exp_avg/blocks", 2, kBlocks, 0, 9, 0, 2), 0);
  EXPECT_EQ(check_box(ckpt, "optim/exp_avg/blocks", 2, kBlocks, 0, 9, 2, 7), 0);
  EXPECT_EQ(check_box(ckpt, "optim/exp_avg/blocks", 2, kBlocks, 2, 8, 1, 6), 0);
  const Meta m = read_meta(ckpt);
  std::vector<std::int64_t> writers;
  for (int r = 0; r < std::min(world_size(), 4); ++r) writers.push_back(r);
  EXPECT_EQ(m.writers, writers);
  for (std::int64_t r : writers) EXPECT_TRUE(fs::exists(ckpt / ("shard-0000" + std::to_string(r) + ".h5")));
}

TEST(CheckpointReshard, AReplicatedTensorIsWrittenByTheLowestRankHoldingIt) {
  const fs::path dir = fresh_dir("replicated");
  const int rank = world_rank(), size = world_size();
  // Only the upper half of the ranks hold a copy (all of them on one rank).
  const bool holds = size == 1 || rank >= size / 2;
  const int owner = lowest_full_copy_rank(MPI_COMM_WORLD, holds);
  EXPECT_EQ(owner, size == 1 ? 0 : size / 2);
  std::vector<Slice> mine;
  if (rank == owner) mine.push_back(box("model/norm", 3, {1, 6}, 0, 1, 0, 6));
  Checkpointer c(dir, MPI_COMM_WORLD, 0, false);
  c.save(at_step(1), mine);
  EXPECT_EQ(check_box(*latest(dir), "model/norm", 3, {1, 6}, 0, 1, 0, 6), 0);
  EXPECT_EQ(read_meta(*latest(dir)).writers, std::vector<std::int64_t>{owner});
}

TEST(CheckpointReshard, AsyncSavesCommitInOrderOnEveryRank) {
  const fs::path dir = fresh_dir("async_mpi");
  Checkpointer c(dir, MPI_COMM_WORLD, 1, true);
  c.save(at_step(1), owned_slices());
  c.save(at_step(2), owned_slices());
  EXPECT_EQ(latest(dir), step_dir(dir, 1));
  const auto done = c.finish();
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(done->bytes, (12 * 10 + 9 * 7) * 4);
  EXPECT_EQ(latest(dir), step_dir(dir, 2));
  EXPECT_FALSE(fs::exists(step_dir(dir, 1)));  // keep_last 1
  EXPECT_EQ(check_box(step_dir(dir, 2), "model/rows", 1, kRows, 0, 12, 0, 10), 0);
}

TEST(CheckpointReshard, AnErrorOnOneRankFailsTheSaveOnEveryRank) {
  const fs::path dir = fresh_dir("agree");
  const int rank = world_rank(), size = world_size();
  std::vector<Slice> mine = owned_slices();
  if (rank == size - 1) mine.push_back(Slice{"model/bad", {2}, {5}, Tensor::host({1}, DType::f32)});
  Checkpointer c(dir, MPI_COMM_WORLD, 0, false);
  try {
    c.save(at_step(1), mine);
    ADD_FAILURE() << "the save should have failed";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("failed on rank " + std::to_string(size - 1) + ": checkpoint: tensor model/bad"),
              std::string::npos)
        << e.message();
  }
  EXPECT_FALSE(fs::exists(dir / "latest"));
}
