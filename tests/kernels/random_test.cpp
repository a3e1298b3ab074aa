#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "kernels/random.hpp"
#include "kernels/test_util.hpp"

using namespace r1;
using kernels::Distribution;

TEST(RandomCpu, ShardedFillEqualsTheWholeFill) {
  const auto ctx = kernels::Context::cpu();
  const RngKey key{99, 5};
  Tensor whole = Tensor::host({1000}, DType::f32);
  kernels::fill_random(ctx, whole, Distribution::normal, 0.0f, 0.02f, key);
  // Three "ranks" each own a contiguous shard and fill it at their global offset.
  for (auto [lo, hi] : {std::pair{0, 333}, std::pair{333, 334}, std::pair{334, 1000}}) {
    Tensor shard = Tensor::host({hi - lo}, DType::f32);
    kernels::fill_random(ctx, shard, Distribution::normal, 0.0f, 0.02f, key, lo);
    EXPECT_EQ(std::memcmp(shard.raw(), whole.slice(lo, hi).raw(), shard.nbytes()), 0) << lo;
  }
}

TEST(RandomCpu, DistributionsHaveTheirParameters) {
  const auto ctx = kernels::Context::cpu();
  Tensor u = Tensor::host({100000}, DType::f32), n = Tensor::host({100000}, DType::bf16);
  kernels::fill_random(ctx, u, Distribution::uniform, -2.0f, 6.0f, RngKey{1, 0});
  kernels::fill_random(ctx, n, Distribution::normal, 1.0f, 3.0f, RngKey{1, 1});
  double su = 0, sn = 0, sn2 = 0;
  for (std::int64_t i = 0; i < 100000; ++i) {
    const double a = test::value(u, i), b = test::value(n, i);
    ASSERT_GT(a, -2.0);
    ASSERT_LE(a, 6.0);
    su += a;
    sn += b;
    sn2 += (b - 1) * (b - 1);
  }
  EXPECT_NEAR(su / 1e5, 2.0, 0.03);
  EXPECT_NEAR(sn / 1e5, 1.0, 0.05);
  EXPECT_NEAR(std::sqrt(sn2 / 1e5), 3.0, 0.05);
}

TEST(RandomCpu, RejectsNonFloatTensors) {
  const auto ctx = kernels::Context::cpu();
  EXPECT_THROW(kernels::fill_random(ctx, Tensor::host({4}, DType::i32), Distribution::uniform, 0, 1, RngKey{}), Error);
}
