#include <gtest/gtest.h>

#include <cmath>

#include "core/rng.hpp"

using namespace r1;

// Known-answer vectors of Philox-4x32-10 published with the Random123 library (kat_vectors).
TEST(Philox, MatchesPublishedKnownAnswers) {
  const Philox4 zero = philox4x32_10(Philox4{{0, 0, 0, 0}}, 0, 0);
  EXPECT_EQ(zero.v[0], 0x6627e8d5u);
  EXPECT_EQ(zero.v[1], 0xe169c58du);
  EXPECT_EQ(zero.v[2], 0xbc57ac4cu);
  EXPECT_EQ(zero.v[3], 0x9b00dbd8u);
  const Philox4 ones = philox4x32_10(Philox4{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, 0xffffffffu, 0xffffffffu);
  EXPECT_EQ(ones.v[0], 0x408f276du);
  EXPECT_EQ(ones.v[1], 0x41c83b0eu);
  EXPECT_EQ(ones.v[2], 0xa20bc7c6u);
  EXPECT_EQ(ones.v[3], 0x6d5451fdu);
  const Philox4 pi = philox4x32_10(Philox4{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, 0xa4093822u, 0x299f31d0u);
  EXPECT_EQ(pi.v[0], 0xd16cfe09u);
  EXPECT_EQ(pi.v[1], 0x94fdccebu);
  EXPECT_EQ(pi.v[2], 0x5001e420u);
  EXPECT_EQ(pi.v[3], 0x24126ea1u);
}

TEST(Rng, ValueDependsOnlyOnSeedStreamAndIndex) {
  const RngKey k{42, 3};
  // Drawing index 1000 directly equals drawing it after any other draws (no hidden state).
  const float direct = random_normal(k, 1000);
  for (std::uint64_t i = 0; i < 1000; ++i) (void)random_normal(k, i);
  EXPECT_EQ(random_normal(k, 1000), direct);
  EXPECT_NE(random_normal(RngKey{42, 4}, 1000), direct);
  EXPECT_NE(random_normal(RngKey{43, 3}, 1000), direct);
}

TEST(Rng, UniformAndNormalHaveTheRightMoments) {
  const RngKey k{7, 0};
  const int n = 200000;
  double su = 0, sn = 0, sn2 = 0;
  float umin = 2, umax = -1;
  for (int i = 0; i < n; ++i) {
    const float u = random_uniform(k, i);
    umin = std::min(umin, u);
    umax = std::max(umax, u);
    su += u;
    const double z = random_normal(k, i);
    sn += z;
    sn2 += z * z;
  }
  EXPECT_GT(umin, 0.0f);
  EXPECT_LE(umax, 1.0f);
  EXPECT_NEAR(su / n, 0.5, 0.005);
  EXPECT_NEAR(sn / n, 0.0, 0.01);
  EXPECT_NEAR(sn2 / n, 1.0, 0.015);
}
