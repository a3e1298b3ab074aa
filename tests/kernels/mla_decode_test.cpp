// MLA decode kernels on the CPU: the absorbed latent-space attention against MLA's definition with per-head
// keys and values expanded in double (masking by per-sequence lengths: cache rows past a length hold NaN),
// the cache row writes, a paged cache (block pools read through a shuffled block table, block sizes 1, 3, 4,
// 16) giving the same bits as the contiguous one, and the rule that splits the CUDA kernel's work over the
// cache length.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/error.hpp"
#include "kernels/mla_decode.hpp"
#include "kernels/test_util.hpp"
#include "paged_cache.hpp"

using namespace r1;
using kernels::Context;

TEST(MlaDecode, AbsorbedAttentionEqualsExpandedKeysAndValues) {
  const std::int64_t B = 3, H = 2, dn = 5, dr = 4, dv = 6, R = 7, L = 9;
  const float scale = 0.3f;
  const Tensor q = test::random_tensor({B, H, dn + dr}, DType::f32, 1);
  const Tensor w = test::random_tensor({H * (dn + dv), R}, DType::f32, 2, 0.5f);
  const Tensor kv = test::random_tensor({B, L, R}, DType::f32, 3), pe = test::random_tensor({B, L, dr}, DType::f32, 4);
  const std::vector<std::int32_t> len{1, 9, 4};
  for (std::int64_t b = 0; b < B; ++b)  // rows past a length must never be read
    for (std::int64_t j = len[b]; j < L; ++j) {
      for (std::int64_t r = 0; r < R; ++r) kv.data<float>()[(b * L + j) * R + r] = std::numeric_limits<float>::quiet_NaN();
      for (std::int64_t e = 0; e < dr; ++e) pe.data<float>()[(b * L + j) * dr + e] = std::numeric_limits<float>::quiet_NaN();
    }
  const Tensor out = Tensor::host({B, H, dv}, DType::f32);
  kernels::mla_decode_attention(Context::cpu(), q, w, kv, pe, test::host_ints(len), scale, out);

  const auto Q = [&](std::int64_t b, std::int64_t h, std::int64_t d) { return (double)q.data<float>()[(b * H + h) * (dn + dr) + d]; };
  const auto W = [&](std::int64_t row, std::int64_t r) { return (double)w.data<float>()[row * R + r]; };
  const auto C = [&](std::int64_t b, std::int64_t j, std::int64_t r) { return (double)kv.data<float>()[(b * L + j) * R + r]; };
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t h = 0; h < H; ++h) {
      std::vector<double> s(len[b]);
      double m = -1e300, z = 0;
      for (std::int64_t j = 0; j < len[b]; ++j) {
        double a = 0;
        for (std::int64_t d = 0; d < dn; ++d) {
          double k = 0;  // k_nope[j, h, d] = c_j . W_UK_h[d]
          for (std::int64_t r = 0; r < R; ++r) k += C(b, j, r) * W(h * (dn + dv) + d, r);
          a += Q(b, h, d) * k;
        }
        for (std::int64_t e = 0; e < dr; ++e) a += Q(b, h, dn + e) * pe.data<float>()[(b * L + j) * dr + e];
        s[j] = scale * a;
        m = std::max(m, s[j]);
      }
      for (double& x : s) z += (x = std::exp(x - m));
      for (std::int64_t v = 0; v < dv; ++v) {
        double o = 0;
        for (std::int64_t j = 0; j < len[b]; ++j) {
          double vv = 0;  // v[j, h, v] = c_j . W_UV_h[v]
          for (std::int64_t r = 0; r < R; ++r) vv += C(b, j, r) * W(h * (dn + dv) + dn + v, r);
          o += s[j] / z * vv;
        }
        EXPECT_NEAR(out.data<float>()[(b * H + h) * dv + v], o, 1e-5 * (1 + std::fabs(o))) << b << " " << h << " " << v;
      }
    }
}

TEST(MlaDecode, CacheWriteFillsRowsFromEachStartAndLeavesTheRest) {
  const std::int64_t B = 2, S = 3, W = 4, L = 6;
  const Tensor src = test::random_tensor({B, S, W}, DType::f32, 5);
  const Tensor cache = test::random_tensor({B, L, W}, DType::f32, 6);
  const Tensor before = test::to_host(cache);
  kernels::kv_cache_write(Context::cpu(), src, test::host_ints({0, 3}), cache);
  const std::int64_t start[] = {0, 3};
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t j = 0; j < L; ++j)
      for (std::int64_t w = 0; w < W; ++w) {
        const bool written = j >= start[b] && j < start[b] + S;
        const float want = written ? src.data<float>()[(b * S + j - start[b]) * W + w] : before.data<float>()[(b * L + j) * W + w];
        EXPECT_EQ(cache.data<float>()[(b * L + j) * W + w], want);
      }
  EXPECT_THROW(kernels::kv_cache_write(Context::cpu(), src, test::host_ints({0, 4}), cache), Error);
}

TEST(MlaDecode, PagedCacheGivesTheContiguousCachesBits) {
  const std::int64_t B = 3, H = 2, dn = 5, dr = 4, dv = 6, R = 7, L = 9;
  const Tensor q = test::random_tensor({B, H, dn + dr}, DType::f32, 1);
  const Tensor w = test::random_tensor({H * (dn + dv), R}, DType::f32, 2, 0.5f);
  const Tensor kv = test::random_tensor({B, L, R}, DType::f32, 3), pe = test::random_tensor({B, L, dr}, DType::f32, 4);
  const Tensor len = test::host_ints({1, 9, 4});
  const Tensor want = Tensor::host({B, H, dv}, DType::f32), got = Tensor::host({B, H, dv}, DType::f32);
  kernels::mla_decode_attention(Context::cpu(), q, w, kv, pe, len, 0.3f, want);
  for (std::int64_t bs : {1, 3, 4, 16}) {
    const Tensor table = test::shuffled_block_table(B, L, bs, 2, static_cast<std::uint32_t>(bs));
    const std::int64_t blocks = table.numel() + 2;
    const Tensor kv_pool = test::to_pool(kv, table, bs, blocks, test::nan_row(DType::f32, R));
    const Tensor pe_pool = test::to_pool(pe, table, bs, blocks, test::nan_row(DType::f32, dr));
    kernels::mla_decode_attention(Context::cpu(), q, w, kv_pool, pe_pool, len, 0.3f, got, table);
    EXPECT_EQ(std::memcmp(got.raw(), want.raw(), static_cast<std::size_t>(want.numel()) * sizeof(float)), 0)
        << "block size " << bs;  // bitwise: a NaN row read would show
  }
}

TEST(MlaDecode, PagedCacheWriteFillsTheSlotsBlocks) {
  const std::int64_t B = 2, S = 3, W = 4, L = 7, bs = 2;
  const Tensor src = test::random_tensor({B, S, W}, DType::f32, 5);
  const Tensor cache = test::random_tensor({B, L, W}, DType::f32, 6);
  const Tensor table = test::shuffled_block_table(B, L, bs, 1, 7);
  const Tensor pool = test::to_pool(cache, table, bs, table.numel() + 1, test::nan_row(DType::f32, W));
  kernels::kv_cache_write(Context::cpu(), src, test::host_ints({0, 3}), cache);
  kernels::kv_cache_write(Context::cpu(), src, test::host_ints({0, 3}), pool, table);
  const Tensor want = test::to_pool(cache, table, bs, table.numel() + 1, test::nan_row(DType::f32, W));
  EXPECT_EQ(std::memcmp(pool.raw(), want.raw(), static_cast<std::size_t>(pool.numel()) * sizeof(float)), 0);
  EXPECT_THROW(kernels::kv_cache_write(Context::cpu(), src, test::host_ints({0, 6}), pool, table), Error);
  table.data<std::int32_t>()[3] = static_cast<std::int32_t>(table.numel() + 1);  // past the pool
  try {
    kernels::kv_cache_write(Context::cpu(), src, test::host_ints({0, 3}), pool, table);
    FAIL() << "a block id past the pool accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("kv_cache_write: block_table[3] = 9 is outside [0, 8]"), std::string::npos)
        << e.what();
  }
}

TEST(MlaDecode, LengthsOutsideTheCacheAreRejected) {
  const Tensor q = test::random_tensor({1, 1, 3}, DType::f32, 1), w = test::random_tensor({3, 2}, DType::f32, 2);
  const Tensor kv = test::random_tensor({1, 4, 2}, DType::f32, 3), pe = test::random_tensor({1, 4, 1}, DType::f32, 4);
  const Tensor out = Tensor::host({1, 1, 1}, DType::f32);
  EXPECT_THROW(kernels::mla_decode_attention(Context::cpu(), q, w, kv, pe, test::host_ints({5}), 1.0f, out), Error);
  EXPECT_THROW(kernels::mla_decode_attention(Context::cpu(), q, w, kv, pe, test::host_ints({0}), 1.0f, out), Error);
}

TEST(MlaDecode, SplitFillsTheGpuWithWholeChunksIndependentOfLengths) {
  using kernels::mla_decode_split;
  // Batch 1 at bench heads on 132 SMs: 17 splits wanted, chunks rounded up to 64 tokens.
  EXPECT_EQ(mla_decode_split(16, 600, 132).chunk, 64);
  EXPECT_EQ(mla_decode_split(16, 600, 132).splits, 10);
  EXPECT_EQ(mla_decode_split(16, 4096, 132).chunk, 256);
  EXPECT_EQ(mla_decode_split(16, 4096, 132).splits, 16);
  // B H alone fills the GPU: one split covering the whole cache.
  EXPECT_EQ(mla_decode_split(1024, 4000, 132).splits, 1);
  EXPECT_EQ(mla_decode_split(1024, 4000, 132).chunk, 4032);
  for (std::int64_t bh : {1, 3, 16, 100, 263, 264, 5000})
    for (std::int64_t len : {1, 63, 64, 65, 600, 4096, 163840})
      for (int sms : {1, 78, 132}) {
        const kernels::MlaDecodeSplit s = mla_decode_split(bh, len, sms);
        const std::int64_t want = (2 * sms + bh - 1) / bh;
        EXPECT_EQ(s.chunk % kernels::kMlaDecodeChunkQuantum, 0);
        EXPECT_GE(s.chunk * s.splits, len);
        EXPECT_LT((s.splits - 1) * s.chunk, len);
        if (bh >= 2 * sms) {
          EXPECT_EQ(s.splits, 1) << bh << " " << len << " " << sms;
        }
        if (len >= kernels::kMlaDecodeChunkQuantum * want) {  // rounding to whole chunks loses at most half
          EXPECT_GE(bh * s.splits, sms) << bh << " " << len << " " << sms;
        }
      }
}
