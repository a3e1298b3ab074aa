// The bubble a pipeline schedule's pass orders leave when every pass of a kind takes the same time and
// messages are free: each rank runs its pipeline_order pass after pass, a pass starting once its input is
// done. The oracle of ideal_bubble in the pipeline schedule tests.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <optional>
#include <vector>

#include "train/pipeline_schedule.hpp"

namespace r1::test {

// The largest idle share over the ranks, with forwards taking f, backwards b and W passes w.
inline double simulated_bubble(PipelineSchedule s, int stages, int virtual_stages, int micro_batches, bool split,
                               double f, double b, double w = 0) {
  using Kind = PipelineAction::Kind;
  const int chain = pipeline_chain_length(s, stages, virtual_stages);
  std::vector<std::vector<PipelineAction>> orders;
  for (int r = 0; r < stages; ++r) orders.push_back(pipeline_order(s, stages, r, virtual_stages, micro_batches, split));
  std::map<PipelineAction, double> done;  // finish time of each pass
  std::vector<double> clock(stages, 0), busy(stages, 0);
  std::vector<std::size_t> next(stages, 0);
  for (bool moved = true; moved;) {
    moved = false;
    for (int r = 0; r < stages; ++r) {
      for (; next[r] < orders[r].size(); ++next[r], moved = true) {
        const PipelineAction& a = orders[r][next[r]];
        std::optional<PipelineAction> in;  // the pass this one waits for (a W's backward ran before it here)
        if (a.kind == Kind::forward && a.chunk % chain > 0) in = PipelineAction{Kind::forward, a.micro, a.chunk - 1};
        if (a.kind == Kind::backward)
          in = a.chunk % chain == chain - 1 ? PipelineAction{Kind::forward, a.micro, a.chunk}
                                            : PipelineAction{Kind::backward, a.micro, a.chunk + 1};
        if (in && !done.count(*in)) break;
        const double cost = a.kind == Kind::forward ? f : a.kind == Kind::backward ? b : w;
        clock[r] = std::max(clock[r], in ? done[*in] : 0.0) + cost;
        busy[r] += cost;
        done[a] = clock[r];
      }
    }
  }
  for (int r = 0; r < stages; ++r) EXPECT_EQ(next[r], orders[r].size()) << "the orders stall at rank " << r;
  const double wall = *std::max_element(clock.begin(), clock.end());
  double idle = 0;
  for (int r = 0; r < stages; ++r) idle = std::max(idle, 1 - busy[r] / wall);
  return idle;
}

}  // namespace r1::test
