// MLA decode kernels: CUDA against the CPU reference at bench shapes (16 heads, d_nope 128, d_rope 64,
// d_v 128, R_kv 512) in f32 and bf16: ragged lengths, batch 1 split over the cache with lengths at every chunk
// boundary, a batch large enough for one split, odd widths (the scalar path), the same bits run to run; cache
// writes bit-exact; a paged cache (pools read through a shuffled block table, block sizes 1, 7, 16, 64) against
// the contiguous CPU reference, and paged writes bit-exact. Cache rows past a sequence's length hold NaN, so
// reading one shows.
// Labelled `gpu`: fails (never skips) without a CUDA device.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cuda/resources.hpp"
#include "kernels/mla_decode.hpp"
#include "kernels/test_util.hpp"
#include "paged_cache.hpp"

using namespace r1;
using kernels::Context;

namespace {

struct Dims {
  std::int64_t heads, d_nope, d_rope, d_v, rank, max_len;
};
constexpr Dims kBench{16, 128, 64, 128, 512, 0};

// The inputs of one decode step (host), cache rows past each length set to NaN.
struct Inputs {
  Tensor q, w, kv, pe, len;
};
Inputs make_inputs(const Dims& d, const std::vector<std::int32_t>& lengths, DType dt, std::uint32_t seed) {
  const std::int64_t B = static_cast<std::int64_t>(lengths.size()), L = d.max_len;
  Inputs in{test::random_tensor({B, d.heads, d.d_nope + d.d_rope}, dt, seed),
            test::random_tensor({d.heads * (d.d_nope + d.d_v), d.rank}, dt, seed + 1, 0.05f),
            test::random_tensor({B, L, d.rank}, dt, seed + 2), test::random_tensor({B, L, d.d_rope}, dt, seed + 3),
            test::host_ints(lengths)};
  kernels::with_float_type(dt, "make_inputs", [&](auto tag) {
    using T = decltype(tag);
    const T nan = kernels::store_as<T>(std::numeric_limits<float>::quiet_NaN());
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t j = lengths[static_cast<std::size_t>(b)]; j < L; ++j) {
        for (std::int64_t r = 0; r < d.rank; ++r) in.kv.data<T>()[(b * L + j) * d.rank + r] = nan;
        for (std::int64_t e = 0; e < d.d_rope; ++e) in.pe.data<T>()[(b * L + j) * d.d_rope + e] = nan;
      }
  });
  return in;
}

// The CUDA output (host copy) for inputs already on the device.
Tensor run_gpu(const Context& dev, const Inputs& in, float scale) {
  const Tensor out = dev.empty({in.q.dim(0), in.q.dim(1), in.w.dim(0) / in.q.dim(1) - in.q.dim(2) + in.pe.dim(2)},
                               in.q.dtype());
  kernels::mla_decode_attention(dev, in.q, in.w, in.kv, in.pe, in.len, scale, out);
  return test::to_host(out);
}

// CUDA against the CPU reference for one set of lengths, within the tolerance of the dtype.
void expect_parity(const Dims& d, const std::vector<std::int32_t>& lengths, DType dt, std::uint32_t seed = 1) {
  const Context cpu = Context::cpu(), dev = test::gpu_context();
  const float scale = 0.07f;
  const Inputs in = make_inputs(d, lengths, dt, seed);
  const Tensor out = Tensor::host({in.q.dim(0), d.heads, d.d_v}, dt);
  kernels::mla_decode_attention(cpu, in.q, in.w, in.kv, in.pe, in.len, scale, out);
  const Inputs din{dev.to_here(in.q), dev.to_here(in.w), dev.to_here(in.kv), dev.to_here(in.pe), dev.to_here(in.len)};
  const Tensor got = run_gpu(dev, din, scale);
  const double ref = test::max_error(out, Tensor::host_zeros(out.shape(), dt));
  ASSERT_GT(ref, 0.0);
  EXPECT_LE(test::max_error(got, out), (dt == DType::f32 ? 1e-4 : 2e-2) * ref)
      << dtype_name(dt) << " B " << lengths.size() << " L " << d.max_len << " first length " << lengths[0];
}

int sm_count() { return test::gpu_context().cuda_resources().sm_count; }
}  // namespace

TEST(MlaDecodeParity, AttentionMatchesTheCpuReference) {
  Dims d = kBench;
  d.max_len = 300;
  for (DType dt : {DType::f32, DType::bf16}) expect_parity(d, {1, 64, 177, 300}, dt);
}

TEST(MlaDecodeParity, BatchOneSplitsTheCacheAndMatchesAtEveryChunkBoundary) {
  Dims d = kBench;
  d.max_len = 600;
  const kernels::MlaDecodeSplit split = kernels::mla_decode_split(d.heads, d.max_len, sm_count());
  ASSERT_GT(split.splits, 1) << "batch 1 must be split over the cache";
  const std::int32_t c = static_cast<std::int32_t>(split.chunk), L = static_cast<std::int32_t>(d.max_len);
  std::vector<std::int32_t> lengths{1, 2, 31, 33, c - 1, c, c + 1, 2 * c, 2 * c + 1, L - c, L - 1, L};
  for (DType dt : {DType::f32, DType::bf16})
    for (std::int32_t n : lengths)
      if (n >= 1 && n <= L) expect_parity(d, {n}, dt, static_cast<std::uint32_t>(n));
}

TEST(MlaDecodeParity, LargeBatchRunsOneSplitPerHead) {
  Dims d = kBench;
  d.max_len = 200;
  const std::int64_t B = 64;
  ASSERT_EQ(kernels::mla_decode_split(B * d.heads, d.max_len, sm_count()).splits, 1);
  std::vector<std::int32_t> lengths;
  for (std::int64_t b = 0; b < B; ++b) lengths.push_back(static_cast<std::int32_t>(1 + (b * 37) % d.max_len));
  lengths[5] = static_cast<std::int32_t>(d.max_len);
  for (DType dt : {DType::f32, DType::bf16}) expect_parity(d, lengths, dt);
}

TEST(MlaDecodeParity, OddWidthsTakeTheScalarPath) {
  // R, d_rope not multiples of a 16-byte pack; several splits at batch 1, one split past the length.
  const Dims d{3, 24, 10, 20, 100, 450};
  for (DType dt : {DType::f32, DType::bf16}) {
    expect_parity(d, {450}, dt);
    expect_parity(d, {129, 7}, dt);
  }
}

TEST(MlaDecodeParity, RepeatedRunsGiveTheSameBits) {
  const Context dev = test::gpu_context();
  Dims d = kBench;
  d.max_len = 600;
  for (DType dt : {DType::f32, DType::bf16}) {
    const Inputs in = make_inputs(d, {537}, dt, 11);
    const Inputs din{dev.to_here(in.q), dev.to_here(in.w), dev.to_here(in.kv), dev.to_here(in.pe), dev.to_here(in.len)};
    const Tensor first = run_gpu(dev, din, 0.07f);
    for (int rep = 0; rep < 3; ++rep)
      EXPECT_EQ(std::memcmp(run_gpu(dev, din, 0.07f).raw(), first.raw(), first.nbytes()), 0) << dtype_name(dt);
  }
}

TEST(MlaDecodeParity, CacheWriteIsBitExact) {
  const Context cpu = Context::cpu(), dev = test::gpu_context();
  for (DType dt : {DType::f32, DType::bf16}) {
    const Tensor src = test::random_tensor({5, 3, 576}, dt, 7), cache = test::random_tensor({5, 40, 576}, dt, 8);
    const Tensor start = test::host_ints({0, 10, 37, 5, 20}), dcache = dev.to_here(cache);
    kernels::kv_cache_write(cpu, src, start, cache);
    kernels::kv_cache_write(dev, dev.to_here(src), dev.to_here(start), dcache);
    EXPECT_EQ(std::memcmp(test::to_host(dcache).raw(), cache.raw(), cache.nbytes()), 0) << dtype_name(dt);
  }
}

TEST(MlaDecodeParity, PagedCacheMatchesTheContiguousCpuReference) {
  const Context cpu = Context::cpu(), dev = test::gpu_context();
  Dims d = kBench;
  d.max_len = 300;
  const std::vector<std::int32_t> lengths{1, 64, 177, 300};
  const auto B = static_cast<std::int64_t>(lengths.size());
  for (DType dt : {DType::f32, DType::bf16})
    for (std::int64_t bs : {1, 7, 16, 64}) {
      const Inputs in = make_inputs(d, lengths, dt, 3);
      const Tensor want = Tensor::host({B, d.heads, d.d_v}, dt);
      kernels::mla_decode_attention(cpu, in.q, in.w, in.kv, in.pe, in.len, 0.07f, want);
      const Tensor table = test::shuffled_block_table(B, d.max_len, bs, 3, static_cast<std::uint32_t>(bs));
      const std::int64_t blocks = table.numel() + 3;
      const Tensor kv = dev.to_here(test::to_pool(in.kv, table, bs, blocks, test::nan_row(dt, d.rank)));
      const Tensor pe = dev.to_here(test::to_pool(in.pe, table, bs, blocks, test::nan_row(dt, d.d_rope)));
      const Tensor out = dev.empty(want.shape(), dt);
      kernels::mla_decode_attention(dev, dev.to_here(in.q), dev.to_here(in.w), kv, pe, dev.to_here(in.len), 0.07f, out,
                                    dev.to_here(table));
      const double ref = test::max_error(want, Tensor::host_zeros(want.shape(), dt));
      const Tensor got = test::to_host(out);
      EXPECT_LE(test::max_error(got, want), (dt == DType::f32 ? 1e-4 : 2e-2) * ref) << dtype_name(dt) << " bs " << bs;
      bool finite = true;
      for (std::int64_t i = 0; i < got.numel(); ++i) finite = finite && std::isfinite(test::value(got, i));
      EXPECT_TRUE(finite) << "a NaN row past a length was read, " << dtype_name(dt) << " bs " << bs;
    }
}

TEST(MlaDecodeParity, PagedCacheWriteIsBitExact) {
  const Context cpu = Context::cpu(), dev = test::gpu_context();
  for (DType dt : {DType::f32, DType::bf16}) {
    const Tensor src = test::random_tensor({5, 3, 576}, dt, 7);
    const Tensor table = test::shuffled_block_table(5, 40, 16, 2, 9);
    const Tensor pool = test::to_pool(test::random_tensor({5, 40, 576}, dt, 8), table, 16, table.numel() + 2,
                                      test::nan_row(dt, 576));
    const Tensor start = test::host_ints({0, 10, 37, 5, 20}), dpool = dev.to_here(pool);
    kernels::kv_cache_write(cpu, src, start, pool, table);
    kernels::kv_cache_write(dev, dev.to_here(src), dev.to_here(start), dpool, dev.to_here(table));
    EXPECT_EQ(std::memcmp(test::to_host(dpool).raw(), pool.raw(), pool.nbytes()), 0) << dtype_name(dt);
  }
}
