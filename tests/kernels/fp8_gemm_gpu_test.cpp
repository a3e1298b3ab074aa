// The CUDA block-scaled FP8 GEMM (cuBLASLt's VEC128 / BLK128x128 scale modes, and the plain kernel where
// cuBLASLt cannot take a problem), the transposed quantisation, the FP8 row gather and the fused SwiGLU + FP8
// quantisation held to their references.
// Labelled `gpu`: fails (never skips) without a CUDA device.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/fp8_experts.hpp"
#include "kernels/fp8_gemm.hpp"
#include "kernels/swiglu.hpp"
#include "kernels/test_util.hpp"

using namespace r1;
using kernels::Context;
using kernels::Fp8Tensor;

namespace {
Fp8Tensor quantized(const Context& ctx, const Tensor& x, int br, int bc) {
  Fp8Tensor q = kernels::make_fp8(ctx, x.dim(0), x.dim(1), br, bc);
  kernels::quantize_fp8(ctx, ctx.to_here(x), q);
  return q;
}
Fp8Tensor on_host(const Fp8Tensor& q) {
  Fp8Tensor h = q;
  h.data = test::to_host(q.data);
  h.scale_inv = test::to_host(q.scale_inv);
  return h;
}
// |q| (a host copy): the sign bits cleared.
Fp8Tensor magnitudes(const Fp8Tensor& q) {
  Fp8Tensor m = q;
  m.data = Tensor::host(q.data.shape(), DType::f8e4m3);
  for (std::int64_t i = 0; i < q.data.numel(); ++i)
    m.data.data<f8e4m3>()[i].bits = static_cast<std::uint8_t>(q.data.data<f8e4m3>()[i].bits & 0x7f);
  return m;
}
}  // namespace

TEST(Fp8GemmGpu, MatchesTheCpuReference) {
  const Context dev = test::gpu_context(), cpu = Context::cpu();
  struct Case {
    std::int64_t m, n, k;
    int b_rows;
  };
  // Whole tiles, partial M and N tiles, K not a multiple of 16 (rows zero-padded for cuBLASLt),
  // 1 x 128 B tiles (the weight gradient's operands).
  for (const Case cs : {Case{256, 512, 384, 128}, Case{200, 136, 320, 128}, Case{70, 90, 200, 128}, Case{128, 256, 512, 1},
                        Case{96, 160, 264, 1}, Case{33, 48, 77, 1}})
    for (DType out : {DType::f32, DType::bf16})
      for (float beta : {0.0f, 1.0f}) {
        const Tensor x = test::random_tensor({cs.m, cs.k}, DType::bf16, 81), w = test::random_tensor({cs.n, cs.k}, DType::bf16, 82);
        const Fp8Tensor qa = quantized(dev, x, 1, 128), qb = quantized(dev, w, cs.b_rows, 128);
        const Tensor c0 = test::random_tensor({cs.m, cs.n}, out, 83);
        const Tensor c = dev.to_here(c0);
        Tensor want = Tensor::host({cs.m, cs.n}, out);
        std::memcpy(want.raw(), c0.raw(), static_cast<std::size_t>(c0.numel()) * dtype_size(out));
        kernels::fp8_gemm(dev, qa, qb, c, {.alpha = 1.0f, .beta = beta});
        kernels::fp8_gemm(cpu, on_host(qa), on_host(qb), want, {.alpha = 1.0f, .beta = beta});
        const Tensor got = test::to_host(c);
        // Hopper's FP8 tensor cores keep about 14 bits while they sum one 128-element tile (V3's report,
        // 3.3.2): against the CPU's exact tile sums, 2^-12 of the tile sums' magnitudes |A| |B|^T.
        Tensor mag = Tensor::host({cs.m, cs.n}, DType::f32);
        kernels::fp8_gemm(cpu, magnitudes(on_host(qa)), magnitudes(on_host(qb)), mag);
        // Both sides round their f32 sums to the output type: near a rounding boundary they may differ by one
        // unit in the last place, at most 2^-7 of the value in bf16 (8 significant bits).
        const double out_ulp = out == DType::f32 ? std::ldexp(1.0, -22) : std::ldexp(1.0, -7);
        double worst = 0;
        for (std::int64_t i = 0; i < got.numel(); ++i) {
          const double err = std::fabs(test::value(got, i) - test::value(want, i));
          const double tol = std::ldexp(test::value(mag, i), -12) +
                             out_ulp * (std::fabs(test::value(want, i)) + beta * std::fabs(test::value(c0, i))) + 1e-6;
          ASSERT_LE(err, tol) << cs.m << "x" << cs.n << "x" << cs.k << " B " << cs.b_rows << "x128 beta " << beta << " at " << i
                              << ": " << test::value(got, i) << " vs " << test::value(want, i) << ", |A||B| " << test::value(mag, i);
          worst = std::max(worst, err / test::value(mag, i));
        }
        std::printf("fp8_gemm %lldx%lldx%lld B %dx128 %s beta %g: worst |error| / |A||B| = %.3g\n", static_cast<long long>(cs.m),
                    static_cast<long long>(cs.n), static_cast<long long>(cs.k), cs.b_rows, dtype_name(out), beta, worst);
      }
}

// Both quantisations, with FP32 and with power-of-two scales ([train] fp8_scale).
TEST(Fp8GemmGpu, QuantisationsAreBitEqualToTheCpu) {
  const Context dev = test::gpu_context(), cpu = Context::cpu();
  for (DType dt : {DType::f32, DType::bf16})
    for (auto [br, bc] : {std::pair{1, 128}, std::pair{128, 128}})
      for (bool pow2 : {false, true})
        for (bool transposed : {false, true}) {
          const Tensor x = test::random_tensor({300, 200}, dt, 91);
          const std::int64_t r = transposed ? 200 : 300, c = transposed ? 300 : 200;
          Fp8Tensor want = kernels::make_fp8(cpu, r, c, br, bc), got = kernels::make_fp8(dev, r, c, br, bc);
          want.pow2_scales = got.pow2_scales = pow2;
          if (transposed) {
            kernels::quantize_fp8_transposed(cpu, x, want);
            kernels::quantize_fp8_transposed(dev, dev.to_here(x), got);
          } else {
            kernels::quantize_fp8(cpu, x, want);
            kernels::quantize_fp8(dev, dev.to_here(x), got);
          }
          const Fp8Tensor h = on_host(got);
          ASSERT_EQ(std::memcmp(h.data.raw(), want.data.raw(), 200 * 300), 0) << br << "x" << bc << " pow2 " << pow2;
          ASSERT_EQ(std::memcmp(h.scale_inv.raw(), want.scale_inv.raw(), want.scale_inv.numel() * 4), 0)
              << br << "x" << bc << " pow2 " << pow2 << " transposed " << transposed;
        }
}

// The FP8 row gather of the expert dispatch: CUDA bytes and scales equal the CPU's.
TEST(Fp8GemmGpu, GatherRowsIsBitEqualToTheCpu) {
  const Context dev = test::gpu_context(), cpu = Context::cpu();
  const Tensor x = test::random_tensor({300, 520}, DType::bf16, 92);
  std::vector<std::int32_t> rows(777);
  for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<std::int32_t>((i * 37) % 300);
  const Fp8Tensor qd = quantized(dev, x, 1, 128);
  Fp8Tensor got = kernels::make_fp8(dev, 777, 520, 1, 128), want = kernels::make_fp8(cpu, 777, 520, 1, 128);
  kernels::gather_fp8_rows(dev, qd, dev.to_here(test::host_ints(rows)), got);
  kernels::gather_fp8_rows(cpu, on_host(qd), test::host_ints(rows), want);
  const Fp8Tensor h = on_host(got);
  EXPECT_EQ(std::memcmp(h.data.raw(), want.data.raw(), want.data.nbytes()), 0);
  EXPECT_EQ(std::memcmp(h.scale_inv.raw(), want.scale_inv.raw(), want.scale_inv.nbytes()), 0);
}

// SwiGLU with its output quantised in the same pass: on CUDA it equals CUDA's swiglu_forward then quantize_fp8 bit
// for bit (the CPU's SwiGLU differs by libm's ulps, kernels_ops_test's tolerance; the CPU fused op is the two ops).
TEST(Fp8GemmGpu, FusedSwigluQuantisationEqualsSwigluThenQuantise) {
  const Context dev = test::gpu_context();
  for (DType dt : {DType::f32, DType::bf16})
    for (bool pow2 : {false, true}) {
      const Tensor gu = dev.to_here(test::random_tensor({300, 2 * 200}, dt, 93));
      const Tensor h = dev.empty({300, 200}, dt), h_ref = dev.empty({300, 200}, dt);
      Fp8Tensor q = kernels::make_fp8(dev, 300, 200, 1, 128), q_ref = kernels::make_fp8(dev, 300, 200, 1, 128);
      q.pow2_scales = q_ref.pow2_scales = pow2;
      kernels::swiglu_forward_fp8(dev, gu, h, q);
      kernels::swiglu_forward(dev, gu, h_ref);
      kernels::quantize_fp8(dev, h_ref, q_ref);
      const Tensor a = test::to_host(h), b = test::to_host(h_ref);
      EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0) << dtype_name(dt) << " pow2 " << pow2;
      const Fp8Tensor x = on_host(q), y = on_host(q_ref);
      EXPECT_EQ(std::memcmp(x.data.raw(), y.data.raw(), x.data.nbytes()), 0) << dtype_name(dt) << " pow2 " << pow2;
      EXPECT_EQ(std::memcmp(x.scale_inv.raw(), y.scale_inv.raw(), x.scale_inv.nbytes()), 0) << dtype_name(dt) << " pow2 " << pow2;
    }
}

// The experts' one-launch quantisations on the GPU: the bytes of the CPU's and of quantising each expert alone on
// the GPU (and scales relaid to the GEMM's layout), for token counts 0, 1, 15, 16, 17, 127, 129.
TEST(Fp8GemmGpu, ExpertQuantisationsAreBitEqualToTheCpuAndToEachExpertAlone) {
  const Context dev = test::gpu_context(), cpu = Context::cpu();
  const std::vector<std::int64_t> offsets = test::ragged_offsets();
  for (DType dt : {DType::f32, DType::bf16})
    for (bool pow2 : {false, true}) {
      const Tensor x = test::random_tensor({offsets.back(), 200}, dt, 92), xd = dev.to_here(x);
      const auto rows = kernels::quantize_fp8_expert_rows(dev, xd, offsets, pow2);
      const auto rows_cpu = kernels::quantize_fp8_expert_rows(cpu, x, offsets, pow2);
      const auto relaid = kernels::fp8_expert_rows(dev, test::quantized_alone(dev, xd, 1, pow2, false), offsets);
      const auto rows_alone = test::expert_rows_alone(dev, xd, offsets, pow2);
      const auto cols = kernels::quantize_fp8_expert_columns(dev, xd, offsets, pow2);
      const auto cols_cpu = kernels::quantize_fp8_expert_columns(cpu, x, offsets, pow2);
      const auto cols_alone = test::expert_columns_alone(dev, xd, offsets, pow2);
      for (std::size_t e = 0; e + 1 < offsets.size(); ++e) {
        const std::string what = "expert " + std::to_string(e) + " pow2 " + std::to_string(pow2);
        EXPECT_TRUE(test::same_fp8(rows[e], rows_cpu[e])) << "rows vs the CPU, " << what;
        EXPECT_TRUE(test::same_fp8(rows[e], kernels::to_gemm_layout(dev, rows_alone[e]))) << "rows vs alone, " << what;
        EXPECT_TRUE(test::same_fp8(relaid[e], rows_cpu[e])) << "relaid rows vs the CPU, " << what;
        EXPECT_TRUE(test::same_fp8(cols[e], cols_cpu[e])) << "columns vs the CPU, " << what;
        EXPECT_TRUE(test::same_fp8(cols[e], kernels::to_gemm_layout(dev, cols_alone[e]))) << "columns vs alone, " << what;
      }
      for (int br : {1, 128})  // the weights' relayout as well
        EXPECT_TRUE(test::same_fp8(kernels::to_gemm_layout(dev, test::quantized_alone(dev, xd, br, pow2, false)),
                                   kernels::to_gemm_layout(cpu, test::quantized_alone(cpu, x, br, pow2, false))))
            << br << "-row tiles";
    }
}

// kernels::fp8_gemm_experts (cuBLASLt over the side streams, cached plans, scales in the GEMM's layout) against one
// kernels::fp8_gemm per expert (scales relaid per call), bit for bit: the forward's shape (128 x 128 weight
// blocks, bf16 out) and the weight gradient's (1 x 128 tiles on both sides along the tokens, f32 += ), none on
// the plain kernel.
TEST(Fp8GemmGpu, ExpertGemmsAreBitEqualToEachExpertsGemm) {
  const Context dev = test::gpu_context();
  std::vector<std::int64_t> offsets = test::ragged_offsets();
  for (std::int64_t n : {300, 768, 64, 513}) offsets.push_back(offsets.back() + n);  // more experts than side streams
  const std::int64_t experts = static_cast<std::int64_t>(offsets.size()) - 1, tokens = offsets.back(), k = 256, n = 384;
  const Tensor x = dev.to_here(test::random_tensor({tokens, k}, DType::bf16, 93));
  const Tensor dy = dev.to_here(test::random_tensor({tokens, n}, DType::bf16, 94));
  const Tensor w = dev.to_here(test::random_tensor({experts, n, k}, DType::f32, 95));
  const std::int64_t plain_before = kernels::fp8_gemm_plain_calls();

  const Tensor y_loop = dev.zeros({tokens, n}, DType::bf16), y = dev.zeros({tokens, n}, DType::bf16);
  test::expert_loop_forward(dev, test::expert_rows_alone(dev, x, offsets, false), w, false, false, y_loop, offsets);
  const auto a = kernels::quantize_fp8_expert_rows(dev, x, offsets, false);
  std::vector<Fp8Tensor> b;
  std::vector<Tensor> c;
  for (std::int64_t e = 0; e < experts; ++e) {
    b.push_back(kernels::to_gemm_layout(dev, test::quantized_alone(dev, test::expert_matrix(w, e), 128, false, false)));
    c.push_back(y.slice(offsets[e], offsets[e + 1]));
  }
  kernels::fp8_gemm_experts(dev, a, b, c);
  EXPECT_TRUE(test::same_bytes(y, y_loop)) << "forward";

  const Tensor dw_loop = dev.to_here(test::random_tensor({experts, n, k}, DType::f32, 96));
  const Tensor dw = dev.empty(dw_loop.shape(), DType::f32);
  copy(dw, dw_loop);
  test::expert_loop_wgrad(dev, dy, x, false, dw_loop, offsets);
  const auto dyq = kernels::quantize_fp8_expert_columns(dev, dy, offsets, false);
  const auto xq = kernels::quantize_fp8_expert_columns(dev, x, offsets, false);
  std::vector<Tensor> dws;
  for (std::int64_t e = 0; e < experts; ++e) dws.push_back(test::expert_matrix(dw, e));
  kernels::fp8_gemm_experts(dev, dyq, xq, dws, {.beta = 1.0f});
  EXPECT_TRUE(test::same_bytes(dw, dw_loop)) << "wgrad";
  EXPECT_EQ(kernels::fp8_gemm_plain_calls(), plain_before) << "an expert GEMM fell back to the plain kernel";
}
