// The region profiler: off records nothing; on, nested regions are charged to '/'-joined paths with their
// calls, a parent's time includes its children's, and take() clears.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "kernels/profile.hpp"

using namespace r1;
using kernels::ProfileRegion;

TEST(Profile, NestedRegionsChargeTheirPaths) {
  const kernels::Context ctx = kernels::Context::cpu();
  kernels::profile::take();
  { const ProfileRegion off(ctx, "off"); }
  EXPECT_TRUE(kernels::profile::take().empty());

  kernels::profile::set_enabled(true);
  for (int i = 0; i < 2; ++i) {
    const ProfileRegion outer(ctx, "forward");
    {
      const ProfileRegion inner(ctx, "attn");
      std::this_thread::sleep_for(std::chrono::milliseconds(15));
    }
    const ProfileRegion sibling(ctx, "moe");
  }
  kernels::profile::set_enabled(false);
  const auto totals = kernels::profile::take();
  ASSERT_EQ(totals.size(), 3u);
  EXPECT_EQ(totals.at("forward").calls, 2);
  EXPECT_EQ(totals.at("forward/attn").calls, 2);
  EXPECT_EQ(totals.at("forward/moe").calls, 2);
  EXPECT_GE(totals.at("forward/attn").seconds, 0.03);
  EXPECT_GE(totals.at("forward").seconds, totals.at("forward/attn").seconds + totals.at("forward/moe").seconds);
  const std::string table = kernels::profile::table(totals, totals.at("forward").seconds / 2, 2);
  EXPECT_EQ(table.find("forward "), table.find("forward"));  // the largest first
  EXPECT_NE(table.find("forward/attn"), std::string::npos);
  EXPECT_TRUE(kernels::profile::take().empty());
}
