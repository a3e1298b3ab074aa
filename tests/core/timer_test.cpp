#include <gtest/gtest.h>

#include <thread>

#include "core/timer.hpp"

TEST(PhaseTimers, AccumulatesPerPhase) {
  r1::PhaseTimers t;
  for (int i = 0; i < 2; ++i) {
    t.start("forward");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    t.stop("forward");
  }
  t.add("comm", 0.25);
  EXPECT_GE(t.totals().at("forward"), 0.009);
  EXPECT_LT(t.totals().at("forward"), 1.0);
  EXPECT_EQ(t.totals().at("comm"), 0.25);
  t.clear();
  EXPECT_TRUE(t.totals().empty());
}
