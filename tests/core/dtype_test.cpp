#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/dtype.hpp"

using namespace r1;

TEST(Bf16, RoundsToNearestEvenAndKeepsSpecials) {
  EXPECT_EQ(to_bf16(1.0f).bits, 0x3f80);
  EXPECT_EQ(to_float(to_bf16(1.0f + 1.0f / 256)), 1.0f);        // halfway, ties to even (down)
  EXPECT_EQ(to_float(to_bf16(1.0f + 3.0f / 256)), 1.0f + 4.0f / 256);  // halfway, ties to even (up)
  EXPECT_EQ(to_float(to_bf16(1.0f + 1.1f / 256)), 1.0f + 2.0f / 256);
  EXPECT_TRUE(std::isnan(to_float(to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isinf(to_float(to_bf16(std::numeric_limits<float>::infinity()))));
  EXPECT_EQ(to_float(to_bf16(-0.0f)), 0.0f);
}

TEST(Bf16, EveryFiniteValueRoundTrips) {
  for (std::uint32_t b = 0; b < 0x10000; ++b) {
    const bf16 h{static_cast<std::uint16_t>(b)};
    const float f = to_float(h);
    if (std::isnan(f)) continue;
    ASSERT_EQ(to_bf16(f).bits, h.bits) << "bits " << b;
  }
}

TEST(F8e4m3, EncodesTheFormatsLandmarks) {
  EXPECT_EQ(to_f8e4m3(0.0f).bits, 0x00);
  EXPECT_EQ(to_f8e4m3(1.0f).bits, 0x38);
  EXPECT_EQ(to_f8e4m3(448.0f).bits, 0x7e);
  EXPECT_EQ(to_f8e4m3(-448.0f).bits, 0xfe);
  EXPECT_EQ(to_f8e4m3(1e6f).bits, 0x7e);                 // saturates, no infinity
  EXPECT_EQ(to_f8e4m3(std::ldexp(1.0f, -9)).bits, 0x01);  // smallest subnormal
  EXPECT_EQ(to_f8e4m3(std::ldexp(1.0f, -6)).bits, 0x08);  // smallest normal
  EXPECT_TRUE(std::isnan(to_float(f8e4m3{0x7f})));
  EXPECT_EQ(to_f8e4m3(1.0625f).bits, 0x38);  // halfway between 1 and 1.125: ties to even
  EXPECT_EQ(to_f8e4m3(1.1875f).bits, 0x3a);  // halfway between 1.125 and 1.25: ties to even
}

TEST(F8e4m3, EveryValueRoundTripsAndRoundingIsNearest) {
  for (int b = 0; b < 256; ++b) {
    const f8e4m3 v{static_cast<std::uint8_t>(b)};
    const float f = to_float(v);
    if (std::isnan(f)) continue;
    if (f == 0.0f) continue;  // -0 encodes as +0's magnitude with the sign kept
    ASSERT_EQ(to_f8e4m3(f).bits, v.bits) << "bits " << b;
  }
  // Any float maps to one of its two neighbours in the format, the nearer one.
  for (float x = -460.0f; x <= 460.0f; x += 0.37f) {
    const float q = to_float(to_f8e4m3(x));
    const float ax = std::fabs(x);
    const float ulp = ax < std::ldexp(1.0f, -6) ? std::ldexp(1.0f, -9) : std::ldexp(1.0f, std::ilogb(ax) - 3);
    if (ax <= 448.0f) EXPECT_LE(std::fabs(q - x), 0.5f * ulp + 1e-7f) << x;
    else EXPECT_EQ(std::fabs(q), 448.0f) << x;
  }
}
