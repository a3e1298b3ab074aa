// GQA decode attention on the CPU: one query per sequence against its cached keys and values equals the
// definition in double (query head h reads K/V head h / group; cache rows past each length hold NaN, so
// reading one shows), a paged cache (block pools read through a shuffled block table) gives the contiguous
// cache's bits, and bad shapes or lengths are refused naming the op and the tensor.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/error.hpp"
#include "kernels/gqa_decode.hpp"
#include "kernels/test_util.hpp"
#include "paged_cache.hpp"

using namespace r1;
using kernels::Context;

TEST(GqaDecode, AttentionEqualsTheDefinitionPerQueryGroup) {
  const std::int64_t B = 3, H = 6, K = 2, d = 5, L = 9, group = H / K;
  const float scale = 0.4f;
  const Tensor q = test::random_tensor({B, H, d}, DType::f32, 1);
  const Tensor k = test::random_tensor({B, L, K, d}, DType::f32, 2), v = test::random_tensor({B, L, K, d}, DType::f32, 3);
  const std::vector<std::int32_t> len{1, 9, 4};
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t i = len[b] * K * d; i < L * K * d; ++i) {
      k.data<float>()[b * L * K * d + i] = std::numeric_limits<float>::quiet_NaN();
      v.data<float>()[b * L * K * d + i] = std::numeric_limits<float>::quiet_NaN();
    }
  const Tensor out = Tensor::host({B, H, d}, DType::f32);
  kernels::gqa_decode_attention(Context::cpu(), q, k, v, test::host_ints(len), scale, out);
  const auto at = [&](const Tensor& t, std::int64_t b, std::int64_t j, std::int64_t kv, std::int64_t e) {
    return static_cast<double>(t.data<float>()[((b * L + j) * K + kv) * d + e]);
  };
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t h = 0; h < H; ++h) {
      const std::int64_t kv = h / group;
      std::vector<double> s(static_cast<std::size_t>(len[b]));
      double m = -1e300, z = 0;
      for (std::int64_t j = 0; j < len[b]; ++j) {
        double a = 0;
        for (std::int64_t e = 0; e < d; ++e) a += q.data<float>()[(b * H + h) * d + e] * at(k, b, j, kv, e);
        s[j] = a * scale;
        m = std::max(m, s[j]);
      }
      for (double& x : s) z += (x = std::exp(x - m));
      for (std::int64_t e = 0; e < d; ++e) {
        double o = 0;
        for (std::int64_t j = 0; j < len[b]; ++j) o += s[j] / z * at(v, b, j, kv, e);
        EXPECT_NEAR(out.data<float>()[(b * H + h) * d + e], o, 1e-5) << "b " << b << " h " << h << " e " << e;
      }
    }
}

TEST(GqaDecode, PagedCacheGivesTheContiguousCachesBits) {
  const std::int64_t B = 3, H = 6, K = 2, d = 5, L = 9;
  const Tensor q = test::random_tensor({B, H, d}, DType::f32, 1);
  const Tensor k = test::random_tensor({B, L, K, d}, DType::f32, 2), v = test::random_tensor({B, L, K, d}, DType::f32, 3);
  const Tensor len = test::host_ints({1, 9, 4});
  const Tensor want = Tensor::host({B, H, d}, DType::f32), got = Tensor::host({B, H, d}, DType::f32);
  kernels::gqa_decode_attention(Context::cpu(), q, k, v, len, 0.4f, want);
  const Tensor nan = test::nan_row(DType::f32, K * d);
  for (std::int64_t bs : {1, 3, 4, 16}) {
    const Tensor table = test::shuffled_block_table(B, L, bs, 2, static_cast<std::uint32_t>(bs));
    const std::int64_t blocks = table.numel() + 2;
    kernels::gqa_decode_attention(Context::cpu(), q, test::to_pool(k, table, bs, blocks, nan),
                                  test::to_pool(v, table, bs, blocks, nan), len, 0.4f, got, table);
    EXPECT_EQ(std::memcmp(got.raw(), want.raw(), static_cast<std::size_t>(want.numel()) * sizeof(float)), 0)
        << "block size " << bs;  // bitwise: a NaN row read would show
  }
}

TEST(GqaDecode, RefusesBadGroupsAndLengths) {
  const Tensor q = test::random_tensor({2, 6, 4}, DType::f32, 1), out = Tensor::host({2, 6, 4}, DType::f32);
  const Tensor k = test::random_tensor({2, 5, 4, 4}, DType::f32, 2);  // 4 K/V heads do not divide 6 query heads
  try {
    kernels::gqa_decode_attention(Context::cpu(), q, k, k, test::host_ints({1, 1}), 0.5f, out);
    FAIL() << "4 K/V heads for 6 query heads accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("gqa_decode_attention: 4 K/V heads must divide the 6 query heads"),
              std::string::npos) << e.what();
  }
  const Tensor k2 = test::random_tensor({2, 5, 2, 4}, DType::f32, 3);
  try {
    kernels::gqa_decode_attention(Context::cpu(), q, k2, k2, test::host_ints({1, 6}), 0.5f, out);
    FAIL() << "a length past the cache accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lengths[1] = 6 is outside [1, 5]"), std::string::npos) << e.what();
  }
}
