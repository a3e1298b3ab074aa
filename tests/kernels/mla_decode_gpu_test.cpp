// MLA decode kernels: CUDA against the CPU reference at bench shapes (16 heads, d_nope 128, d_rope 64,
// d_v 128, R_kv 512) in f32 and bf16, ragged lengths over several tiles; cache writes bit-exact.
// Labelled `gpu`: fails (never skips) without a CUDA device.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "kernels/mla_decode.hpp"
#include "kernels/test_util.hpp"

using namespace r1;
using kernels::Context;

namespace {
Tensor ints(const std::vector<std::int32_t>& v) {
  Tensor t = Tensor::host({static_cast<std::int64_t>(v.size())}, DType::i32);
  for (std::size_t i = 0; i < v.size(); ++i) t.data<std::int32_t>()[i] = v[i];
  return t;
}
}  // namespace

TEST(MlaDecodeParity, AttentionMatchesTheCpuReference) {
  const Context cpu = Context::cpu(), dev = test::gpu_context();
  const std::int64_t B = 4, H = 16, dn = 128, dr = 64, dv = 128, R = 512, L = 300;
  const Tensor len = ints({1, 64, 177, 300});
  for (DType dt : {DType::f32, DType::bf16}) {
    const Tensor q = test::random_tensor({B, H, dn + dr}, dt, 1), w = test::random_tensor({H * (dn + dv), R}, dt, 2, 0.05f);
    const Tensor kv = test::random_tensor({B, L, R}, dt, 3), pe = test::random_tensor({B, L, dr}, dt, 4);
    const Tensor out = Tensor::host({B, H, dv}, dt), dout = dev.empty({B, H, dv}, dt);
    kernels::mla_decode_attention(cpu, q, w, kv, pe, len, 0.07f, out);
    kernels::mla_decode_attention(dev, dev.to_here(q), dev.to_here(w), dev.to_here(kv), dev.to_here(pe),
                                  dev.to_here(len), 0.07f, dout);
    const double scale = test::max_error(out, Tensor::host_zeros(out.shape(), dt));
    EXPECT_LE(test::max_error(test::to_host(dout), out), (dt == DType::f32 ? 1e-4 : 2e-2) * scale) << dtype_name(dt);
  }
}

TEST(MlaDecodeParity, CacheWriteIsBitExact) {
  const Context cpu = Context::cpu(), dev = test::gpu_context();
  for (DType dt : {DType::f32, DType::bf16}) {
    const Tensor src = test::random_tensor({5, 3, 576}, dt, 7), cache = test::random_tensor({5, 40, 576}, dt, 8);
    const Tensor start = ints({0, 10, 37, 5, 20}), dcache = dev.to_here(cache);
    kernels::kv_cache_write(cpu, src, start, cache);
    kernels::kv_cache_write(dev, dev.to_here(src), dev.to_here(start), dcache);
    EXPECT_EQ(std::memcmp(test::to_host(dcache).raw(), cache.raw(), cache.nbytes()), 0) << dtype_name(dt);
  }
}
