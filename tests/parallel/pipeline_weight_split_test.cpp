// DualPipeV with the weight gradient split off ([parallel] split_weight_grad) as specifications: the
// forwards and backwards keep their unsplit order and each backward gets one W after it on its rank, in
// micro-batch order per chunk (so every weight gradient sums in one rank's order); DualPipeV's zero-bubble
// placement in a small example; how many deferred Ws a rank holds; the bubble the order leaves; refusals.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.hpp"
#include "support/pipeline_simulation.hpp"
#include "train/pipeline_schedule.hpp"

using namespace r1;

namespace {

using Kind = PipelineAction::Kind;
constexpr PipelineSchedule kDualPipeV = PipelineSchedule::dualpipev;

std::string where(int p, int m, int r) {
  return "stages " + std::to_string(p) + " micro " + std::to_string(m) + " rank " + std::to_string(r);
}

// Every DualPipeV shape the schedule tests cover: 1-8 stages, 2 stages to 2 stages + 9 micro-batches.
template <class F> void for_each_shape(F&& f) {
  for (int p = 1; p <= 8; ++p)
    for (int m = 2 * p; m < 2 * p + 10; ++m)
      for (int r = 0; r < p; ++r) f(p, m, r);
}

TEST(WeightSplit, KeepsTheUnsplitOrderAndGivesEachBackwardOneLaterWInMicroBatchOrder) {
  for_each_shape([](int p, int m, int r) {
    const std::vector<PipelineAction> split = pipeline_order(kDualPipeV, p, r, 1, m, true);
    std::vector<PipelineAction> without_w;
    std::map<PipelineAction, int> backward_at;
    std::map<int, int> last_w_micro;  // per chunk
    for (int i = 0; i < static_cast<int>(split.size()); ++i) {
      const PipelineAction& a = split[i];
      if (a.kind != Kind::weight) {
        without_w.push_back(a);
        if (a.kind == Kind::backward) backward_at[a] = i;
        continue;
      }
      const auto b = backward_at.find({Kind::backward, a.micro, a.chunk});
      ASSERT_NE(b, backward_at.end()) << where(p, m, r) << ": W(" << a.micro << ", " << a.chunk << ") before its B";
      backward_at.erase(b);  // a second W of the same pass finds none
      const auto last = last_w_micro.find(a.chunk);
      EXPECT_TRUE(last == last_w_micro.end() || last->second < a.micro) << where(p, m, r) << ": chunk " << a.chunk;
      last_w_micro[a.chunk] = a.micro;
    }
    EXPECT_TRUE(backward_at.empty()) << where(p, m, r) << ": a backward without its W";
    EXPECT_EQ(without_w, pipeline_order(kDualPipeV, p, r, 1, m)) << where(p, m, r);
  });
}

TEST(WeightSplit, DualPipeVExample) {
  // 2 stages, 4 micro-batches. Rank 0 (chunks 0 and 3): its warm-up B1 and steady-state backwards run their
  // W at once; in the cool-down its B0 of micro-batch 2 defers its W past the last B0, whose W comes last.
  const auto F = [](int m, int c) { return PipelineAction{Kind::forward, m, c}; };
  const auto B = [](int m, int c) { return PipelineAction{Kind::backward, m, c}; };
  const auto W = [](int m, int c) { return PipelineAction{Kind::weight, m, c}; };
  const std::vector<PipelineAction> top = {F(0, 0), F(1, 0), F(2, 0), F(0, 3), B(0, 3), W(0, 3), F(1, 3), F(3, 0),
                                           B(1, 3), W(1, 3), F(2, 3), B(0, 0), W(0, 0), B(2, 3), W(2, 3), F(3, 3),
                                           B(1, 0), W(1, 0), B(3, 3), W(3, 3), B(2, 0), W(2, 0), B(3, 0), W(3, 0)};
  EXPECT_EQ(pipeline_order(kDualPipeV, 2, 0, 1, 4, true), top);
  // Rank 1 (chunks 1 and 2): the second of its two B1 B0 pairs defers both Ws to the end, in their order.
  const std::vector<PipelineAction> turn = {F(0, 1), F(0, 2), F(1, 1), F(1, 2), F(2, 1), B(0, 2), W(0, 2), F(2, 2),
                                            B(0, 1), W(0, 1), F(3, 1), B(1, 2), W(1, 2), F(3, 2), B(1, 1), W(1, 1),
                                            B(2, 2), W(2, 2), B(2, 1), W(2, 1), B(3, 2), B(3, 1), W(3, 2), W(3, 1)};
  EXPECT_EQ(pipeline_order(kDualPipeV, 2, 1, 1, 4, true), turn);
}

// What the deferral costs in memory: rank r holds the weight-gradient inputs of at most r + 1 backwards.
TEST(WeightSplit, RankHoldsAtMostRankPlusOneDeferredWs) {
  for_each_shape([](int p, int m, int r) {
    int held = 0, most = 0;
    for (const PipelineAction& a : pipeline_order(kDualPipeV, p, r, 1, m, true)) {
      held += a.kind == Kind::backward ? 1 : a.kind == Kind::weight ? -1 : 0;
      most = std::max(most, held);
    }
    EXPECT_EQ(most, r + 1) << where(p, m, r);
  });
}

double simulated_bubble(int p, int m, bool split, double f, double b, double w) {
  return test::simulated_bubble(kDualPipeV, p, 1, m, split, f, b, w);
}

// ideal_bubble with the split is what the order leaves at F = B = W, and below the unsplit order's at the
// same backward (B + W = 2F).
TEST(WeightSplit, IdealBubbleIsTheOrdersOwnAtEqualPassesAndBelowTheUnsplitOne) {
  for (int p = 1; p <= 8; ++p)
    for (int m = 2 * p; m < 2 * p + 10; ++m) {
      const double split = ideal_bubble(kDualPipeV, p, 1, m, true);
      EXPECT_NEAR(simulated_bubble(p, m, true, 1, 1, 1), split, 1e-12) << where(p, m, 0);
      if (p > 1) EXPECT_LT(split, ideal_bubble(kDualPipeV, p, 1, m)) << where(p, m, 0);
    }
  EXPECT_DOUBLE_EQ(ideal_bubble(kDualPipeV, 4, 1, 8, true), 3.0 / 51);
}

TEST(WeightSplit, RefusedOutsideDualPipeVNamingTheKey) {
  for (const auto& [s, v, m] : {std::tuple{PipelineSchedule::one_f_one_b, 1, 4}, std::tuple{PipelineSchedule::interleaved, 2, 4}}) {
    try {
      pipeline_order(s, 2, 0, v, m, true);
      ADD_FAILURE() << "no error for " << choice_word(s);
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::user);
      EXPECT_NE(e.message().find("[parallel] split_weight_grad"), std::string::npos) << e.message();
    }
  }
}

}  // namespace
