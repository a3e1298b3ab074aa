// GQA decode attention: CUDA against the CPU reference at Qwen2.5-7B (28 query heads, 4 K/V heads, d 128),
// Llama-3.1-8B (32, 8, 128) and small-head (16, 2, 64; 12, 12, 48) shapes in f32 and bf16: ragged lengths
// across the 64-token tile boundaries, cache rows past each length NaN (reading one shows), the same bits
// run to run; a paged cache (pools read through a shuffled block table, block sizes 1, 7, 16, 64) against the
// contiguous CPU reference. Labelled `gpu`: fails (never skips) without a CUDA device.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/gqa_decode.hpp"
#include "kernels/test_util.hpp"
#include "paged_cache.hpp"

using namespace r1;
using kernels::Context;

namespace {

struct Dims {
  std::int64_t heads, kv_heads, head_dim, max_len;
};

struct Inputs {
  Tensor q, k, v, len;
};
Inputs make_inputs(const Dims& d, const std::vector<std::int32_t>& lengths, DType dt, std::uint32_t seed) {
  const std::int64_t B = static_cast<std::int64_t>(lengths.size()), L = d.max_len, row = d.kv_heads * d.head_dim;
  Inputs in{test::random_tensor({B, d.heads, d.head_dim}, dt, seed),
            test::random_tensor({B, L, d.kv_heads, d.head_dim}, dt, seed + 1),
            test::random_tensor({B, L, d.kv_heads, d.head_dim}, dt, seed + 2), test::host_ints(lengths)};
  kernels::with_float_type(dt, "make_inputs", [&](auto tag) {
    using T = decltype(tag);
    const T nan = kernels::store_as<T>(std::numeric_limits<float>::quiet_NaN());
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t i = lengths[static_cast<std::size_t>(b)] * row; i < L * row; ++i)
        in.k.data<T>()[b * L * row + i] = in.v.data<T>()[b * L * row + i] = nan;
  });
  return in;
}

Tensor run_gpu(const Context& dev, const Inputs& in, float scale) {
  const Tensor q = dev.to_here(in.q), out = dev.empty(in.q.shape(), in.q.dtype());
  kernels::gqa_decode_attention(dev, q, dev.to_here(in.k), dev.to_here(in.v), dev.to_here(in.len), scale, out);
  return test::to_host(out);
}

void expect_parity(const Dims& d, const std::vector<std::int32_t>& lengths, DType dt) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(d.head_dim));
  const Inputs in = make_inputs(d, lengths, dt, 11);
  const Tensor out = Tensor::host(in.q.shape(), dt);
  kernels::gqa_decode_attention(Context::cpu(), in.q, in.k, in.v, in.len, scale, out);
  const Context dev = test::gpu_context();
  const Tensor got = run_gpu(dev, in, scale);
  const double ref = test::max_error(out, Tensor::host_zeros(out.shape(), dt));
  ASSERT_GT(ref, 0.0);
  EXPECT_LE(test::max_error(got, out), (dt == DType::f32 ? 1e-4 : 2e-2) * ref)
      << dtype_name(dt) << " H " << d.heads << " K " << d.kv_heads << " d " << d.head_dim << " B " << lengths.size();
  const Tensor again = run_gpu(dev, in, scale);
  EXPECT_EQ(std::memcmp(got.raw(), again.raw(), got.numel() * dtype_size(dt)), 0) << "not the same bits run to run";
}
}  // namespace

TEST(GqaDecodeParity, AttentionMatchesTheCpuReference) {
  const std::vector<std::int32_t> ragged{1, 63, 64, 65, 200, 300};
  for (DType dt : {DType::f32, DType::bf16}) {
    expect_parity({28, 4, 128, 300}, ragged, dt);  // Qwen2.5-7B
    expect_parity({32, 8, 128, 300}, ragged, dt);  // Llama-3.1-8B
    expect_parity({16, 2, 64, 300}, ragged, dt);
    expect_parity({12, 12, 48, 130}, {130, 7}, dt);  // no grouping, a head dim under a warp's multiple
    expect_parity({4, 1, 256, 1000}, {1000}, dt);    // the largest head dim, one long sequence
  }
}

TEST(GqaDecodeParity, PagedCacheMatchesTheContiguousCpuReference) {
  const Context dev = test::gpu_context();
  const Dims d{28, 4, 128, 300};
  const std::vector<std::int32_t> lengths{1, 63, 64, 65, 200, 300};
  const auto B = static_cast<std::int64_t>(lengths.size());
  const float scale = 1.0f / std::sqrt(128.0f);
  for (DType dt : {DType::f32, DType::bf16})
    for (std::int64_t bs : {1, 7, 16, 64}) {
      const Inputs in = make_inputs(d, lengths, dt, 5);
      const Tensor want = Tensor::host(in.q.shape(), dt);
      kernels::gqa_decode_attention(Context::cpu(), in.q, in.k, in.v, in.len, scale, want);
      const Tensor table = test::shuffled_block_table(B, d.max_len, bs, 3, static_cast<std::uint32_t>(bs));
      const std::int64_t blocks = table.numel() + 3;
      const Tensor nan = test::nan_row(dt, d.kv_heads * d.head_dim);
      const Tensor out = dev.empty(in.q.shape(), dt);
      kernels::gqa_decode_attention(dev, dev.to_here(in.q), dev.to_here(test::to_pool(in.k, table, bs, blocks, nan)),
                                    dev.to_here(test::to_pool(in.v, table, bs, blocks, nan)), dev.to_here(in.len), scale,
                                    out, dev.to_here(table));
      const Tensor got = test::to_host(out);
      const double ref = test::max_error(want, Tensor::host_zeros(want.shape(), dt));
      EXPECT_LE(test::max_error(got, want), (dt == DType::f32 ? 1e-4 : 2e-2) * ref) << dtype_name(dt) << " bs " << bs;
      bool finite = true;
      for (std::int64_t i = 0; i < got.numel(); ++i) finite = finite && std::isfinite(test::value(got, i));
      EXPECT_TRUE(finite) << "a NaN row past a length was read, " << dtype_name(dt) << " bs " << bs;
    }
}
