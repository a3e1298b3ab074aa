// DualPipe (schedule = dualpipe, bidirectional) as specifications: every rank runs each of its two chunks
// (a stage of each direction) over its direction's half of the micro-batches, forwards before backwards,
// W after B with the split; the ranks of each half mirror each other; the activations and deferred Ws it
// holds; the bubble its order leaves at B = 2F and, split, at F = B = W; a small example.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "support/pipeline_simulation.hpp"
#include "train/pipeline_schedule.hpp"

using namespace r1;

namespace {

using Kind = PipelineAction::Kind;
constexpr PipelineSchedule kDualPipe = PipelineSchedule::dualpipe;

std::string where(int p, int m, int r, bool split) {
  return "stages " + std::to_string(p) + " micro " + std::to_string(m) + " rank " + std::to_string(r) +
         (split ? " split" : "");
}

template <class F> void for_each_shape(F&& f) {
  for (int p = 2; p <= 8; p += 2)
    for (int m = 2 * p; m <= 2 * p + 8; m += 2)
      for (bool split : {false, true})
        for (int r = 0; r < p; ++r) f(p, m, r, split);
}

TEST(DualPipeOrder, EachChunkRunsItsDirectionsHalfOfTheMicroBatchesOnce) {
  for_each_shape([](int p, int m, int r, bool split) {
    const std::vector<PipelineAction> order = pipeline_order(kDualPipe, p, r, 1, m, split);
    std::map<PipelineAction, int> at;
    for (int i = 0; i < static_cast<int>(order.size()); ++i)
      EXPECT_TRUE(at.emplace(order[i], i).second) << where(p, m, r, split);
    EXPECT_EQ(order.size(), static_cast<std::size_t>((split ? 3 : 2) * m)) << where(p, m, r, split);
    // Rank r holds stage r going down (chunk r) and stage p - 1 - r of the copy going up (chunk 2p - 1 - r).
    for (const auto& [chunk, first] : {std::pair{r, 0}, std::pair{2 * p - 1 - r, m / 2}})
      for (int micro = first; micro < first + m / 2; ++micro) {
        const PipelineAction f{Kind::forward, micro, chunk}, b{Kind::backward, micro, chunk}, w{Kind::weight, micro, chunk};
        ASSERT_TRUE(at.count(f) && at.count(b)) << where(p, m, r, split) << " micro " << micro << " chunk " << chunk;
        EXPECT_LT(at[f], at[b]) << where(p, m, r, split);
        if (split) EXPECT_LT(at[b], at.at(w)) << where(p, m, r, split);
      }
  });
}

// Rank p - 1 - r runs rank r's order with the directions swapped (the schedule is symmetric).
TEST(DualPipeOrder, MirrorRanksRunTheSameStepsInTheOtherDirection) {
  for_each_shape([](int p, int m, int r, bool split) {
    const auto mine = pipeline_order(kDualPipe, p, r, 1, m, split), mirror = pipeline_order(kDualPipe, p, p - 1 - r, 1, m, split);
    ASSERT_EQ(mine.size(), mirror.size());
    for (std::size_t i = 0; i < mine.size(); ++i) {
      // Chunk c is stage c % p of direction c / p; the mirror runs the same stage of the other direction
      // (whose stage s sits on rank p - 1 - s) for the other half of the micro-batches.
      const int d = mine[i].chunk / p, s = mine[i].chunk % p, micro = (mine[i].micro + m / 2) % m;
      EXPECT_EQ(mirror[i], (PipelineAction{mine[i].kind, micro, (1 - d) * p + s})) << where(p, m, r, split) << " step " << i;
    }
  });
}

// Memory (what --dry-run counts, app/plan.cpp): rank r, DualPipeV's rank min(r, p - 1 - r) of p/2 stages, holds
// at most p + 1 chunk micro-batches of activations (DualPipeV's 2 (p/2) + 1, each chunk a whole stage here)
// and reaches it; with the split at most min(r, p - 1 - r) + 1 Ws wait for their turn (DualPipeV's r + 1).
TEST(DualPipeOrder, HoldsAtMostStagesPlusOneChunkMicroBatchesAndMirrorRankPlusOneDeferredWs) {
  for_each_shape([](int p, int m, int r, bool split) {
    int in_flight = 0, most = 0, deferred = 0, most_deferred = 0;
    for (const PipelineAction& a : pipeline_order(kDualPipe, p, r, 1, m, split)) {
      in_flight += a.kind == Kind::forward ? 1 : a.kind == Kind::backward ? -1 : 0;
      deferred += a.kind == Kind::backward ? 1 : a.kind == Kind::weight ? -1 : 0;
      most = std::max(most, in_flight);
      most_deferred = std::max(most_deferred, deferred);
    }
    EXPECT_EQ(most, p + 1) << where(p, m, r, split);
    if (split) EXPECT_EQ(most_deferred, std::min(r, p - 1 - r) + 1) << where(p, m, r, split);
  });
}

TEST(DualPipeOrder, Example) {
  // 2 stages, 4 micro-batches (0, 1 from rank 0, 2, 3 from rank 1), rank 0 (stage 0 down: chunk 0; stage 1
  // of the copy, up: chunk 3): F0 down, then F of micro-batch 2 arriving from rank 1 and its backward at
  // once, the pairs of one direction's forward with the other's backward, the last backward at the end.
  const auto F = [](int m, int c) { return PipelineAction{Kind::forward, m, c}; };
  const auto B = [](int m, int c) { return PipelineAction{Kind::backward, m, c}; };
  const std::vector<PipelineAction> top = {F(0, 0), F(2, 3), F(1, 0), B(2, 3), F(3, 3), B(0, 0), B(3, 3), B(1, 0)};
  EXPECT_EQ(pipeline_order(kDualPipe, 2, 0, 1, 4), top);
}

double simulated_bubble(int p, int m, bool split, double f, double b, double w) {
  return test::simulated_bubble(kDualPipe, p, 1, m, split, f, b, w);
}

TEST(DualPipeOrder, IdealBubbleIsTheOrdersOwn) {
  for (int p = 2; p <= 8; p += 2)
    for (int m = 2 * p; m <= 2 * p + 8; m += 2) {
      EXPECT_NEAR(simulated_bubble(p, m, false, 1, 2, 0), ideal_bubble(kDualPipe, p, 1, m), 1e-12) << where(p, m, 0, false);
      EXPECT_NEAR(simulated_bubble(p, m, true, 1, 1, 1), ideal_bubble(kDualPipe, p, 1, m, true), 1e-12) << where(p, m, 0, true);
    }
  // At PP4, 8 micro-batches: 3F idle beside 24F, against DualPipeV's (4p - 5)F beside 6mF of half-size chunks.
  EXPECT_DOUBLE_EQ(ideal_bubble(kDualPipe, 4, 1, 8), 3.0 / 27);
  EXPECT_DOUBLE_EQ(ideal_bubble(kDualPipe, 4, 1, 8, true), 1.0 / 25);
}

}  // namespace
