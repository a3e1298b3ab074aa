// model/linear's grouped FP8 GEMMs for the routed experts on CUDA against the CPU reference, with expert token
// counts that are no multiple of 16 (an empty expert too): every GEMM, the weight gradients included (whose inner
// dimension is an expert's tokens, padded with zero rows), runs on cuBLASLt's block-scaled kernels, none on the
// plain fallback. Labelled `gpu`: fails (never skips) without a CUDA device.
#include <gtest/gtest.h>

#include <cstdio>
#include <vector>

#include "kernels/fp8_experts.hpp"
#include "kernels/fp8_gemm.hpp"
#include "kernels/test_util.hpp"
#include "model/linear.hpp"
#include "support/norms.hpp"

using namespace r1;
using kernels::Context;

TEST(LinearFp8Gpu, RaggedExpertsRunOnCublasLtAndMatchTheCpu) {
  const Context dev = test::gpu_context(), cpu = Context::cpu();
  constexpr std::int64_t kE = 4, kT = 301, kIn = 256, kOut = 384;
  const std::vector<std::int64_t> offsets{0, 37, 37, 166, kT};  // 37, 0, 129, 135 tokens
  ParamStore host_store(cpu, DType::f32, true), dev_store(dev, DType::bf16, true);
  Param& wh = use_fp8(host_store, host_store.add("experts", {kE, kOut, kIn}, Init::normal));
  Param& wd = use_fp8(dev_store, dev_store.add("experts", {kE, kOut, kIn}, Init::normal));
  host_store.initialize(12, 0.05);
  dev_store.initialize(12, 0.05);
  copy(wd.master, wh.master);  // one weight on both
  const Tensor x = test::random_tensor({kT, kIn}, DType::bf16, 21), dy = test::random_tensor({kT, kOut}, DType::bf16, 22);
  // The CPU in f32 from the same bf16 values.
  Tensor xf = Tensor::host({kT, kIn}, DType::f32), dyf = Tensor::host({kT, kOut}, DType::f32);
  for (std::int64_t i = 0; i < x.numel(); ++i) xf.data<float>()[i] = static_cast<float>(test::value(x, i));
  for (std::int64_t i = 0; i < dy.numel(); ++i) dyf.data<float>()[i] = static_cast<float>(test::value(dy, i));

  const std::int64_t plain_before = kernels::fp8_gemm_plain_calls();
  const Tensor yd = dev.empty({kT, kOut}, DType::f32), dxd = dev.empty({kT, kIn}, DType::f32);
  grouped_linear_forward(dev, dev.to_here(x), wd, yd, offsets);
  grouped_linear_dgrad(dev, dev.to_here(dy), wd, dxd, offsets);
  grouped_linear_wgrad(dev, dev.to_here(dy), dev.to_here(x), wd, offsets);
  const kernels::Fp8Tensor xq = linear_quantize_input(dev, dev.to_here(x), wd);  // the cached-input path as well
  const Tensor yq = dev.empty({kT, kOut}, DType::f32);
  grouped_linear_forward(dev, xq, wd, yq, offsets);
  grouped_linear_wgrad(dev, dev.to_here(dy), xq, wd, offsets);
  EXPECT_EQ(kernels::fp8_gemm_plain_calls(), plain_before) << "an expert GEMM fell back to the plain kernel";

  Tensor yh = Tensor::host({kT, kOut}, DType::f32), dxh = Tensor::host({kT, kIn}, DType::f32);
  grouped_linear_forward(cpu, xf, wh, yh, offsets);
  grouped_linear_dgrad(cpu, dyf, wh, dxh, offsets);
  grouped_linear_wgrad(cpu, dyf, xf, wh, offsets);
  grouped_linear_wgrad(cpu, dyf, linear_quantize_input(cpu, xf, wh), wh, offsets);
  // Hopper keeps about 14 bits inside a 128-element tile (kernels_gpu_test's bound per element); in relative L2
  // that is well under 1e-3.
  const double ey = test::rel_l2(test::to_host(yd), yh), edx = test::rel_l2(test::to_host(dxd), dxh);
  const double eq = test::rel_l2(test::to_host(yq), yh), ew = test::rel_l2(test::to_host(wd.grad), wh.grad);
  EXPECT_LT(ey, 1e-3);
  EXPECT_LT(edx, 1e-3);
  EXPECT_LT(eq, 1e-3);
  EXPECT_LT(ew, 1e-3);
  std::printf("grouped fp8, experts of 37/0/129/135 tokens: rel L2 forward %.2e, dgrad %.2e, cached forward %.2e, "
              "wgrad (both) %.2e\n", ey, edx, eq, ew);
}

// The grouped CUDA path (one-launch quantisations, kernels::fp8_gemm_experts over the side streams) against the
// per-expert CUDA loop it replaced (each expert quantised alone, one kernels::fp8_gemm each), bit for bit, for
// token counts 0, 1, 15, 16, 17, 127, 129 and a few larger experts; forward, dgrad, wgrad and the cached input.
TEST(LinearFp8Gpu, GroupedExpertsEqualThePerExpertCudaLoopBitForBit) {
  const Context dev = test::gpu_context();
  std::vector<std::int64_t> offsets = test::ragged_offsets();
  for (std::int64_t n : {300, 768, 64, 513}) offsets.push_back(offsets.back() + n);
  const std::int64_t kE = static_cast<std::int64_t>(offsets.size()) - 1, kT = offsets.back(), kIn = 256, kOut = 384;
  for (bool pow2 : {false, true}) {
    ParamStore store(dev, DType::bf16, true, pow2);
    Param& w = use_fp8(store, store.add("experts", {kE, kOut, kIn}, Init::normal));
    store.initialize(16, 0.05);
    const Tensor x = dev.to_here(test::random_tensor({kT, kIn}, DType::bf16, 23));
    const Tensor dy = dev.to_here(test::random_tensor({kT, kOut}, DType::bf16, 24));
    const auto zeros = [&](const Shape& s, DType dt) { return dev.zeros(s, dt); };
    const Tensor y = zeros({kT, kOut}, DType::bf16), dx = zeros({kT, kIn}, DType::bf16), yq = zeros({kT, kOut}, DType::bf16);
    const Tensor y_ref = zeros({kT, kOut}, DType::bf16), dx_ref = zeros({kT, kIn}, DType::bf16);
    const Tensor dw_ref = zeros(w.grad.shape(), DType::f32), dwq_ref = zeros(w.grad.shape(), DType::f32);
    const std::int64_t plain_before = kernels::fp8_gemm_plain_calls();
    grouped_linear_forward(dev, x, w, y, offsets);
    grouped_linear_dgrad(dev, dy, w, dx, offsets);
    grouped_linear_wgrad(dev, dy, x, w, offsets);
    const Tensor dw = test::to_host(w.grad);
    const kernels::Fp8Tensor xq = linear_quantize_input(dev, x, w);
    grouped_linear_forward(dev, xq, w, yq, offsets);
    store.zero_grads();
    grouped_linear_wgrad(dev, dy, xq, w, offsets);
    EXPECT_EQ(kernels::fp8_gemm_plain_calls(), plain_before) << "an expert GEMM fell back to the plain kernel";

    test::expert_loop_forward(dev, test::expert_rows_alone(dev, x, offsets, pow2), w.master, false, pow2, y_ref, offsets);
    test::expert_loop_forward(dev, test::expert_rows_alone(dev, dy, offsets, pow2), w.master, true, pow2, dx_ref, offsets);
    test::expert_loop_wgrad(dev, dy, x, pow2, dw_ref, offsets);
    const Tensor x_cached = dev.empty({kT, kIn}, DType::f32);
    kernels::dequantize_fp8(dev, xq, x_cached);
    test::expert_loop_wgrad(dev, dy, x_cached, pow2, dwq_ref, offsets);
    EXPECT_TRUE(test::same_bytes(y, y_ref)) << "forward, pow2 " << pow2;
    EXPECT_TRUE(test::same_bytes(dx, dx_ref)) << "dgrad, pow2 " << pow2;
    EXPECT_TRUE(test::same_bytes(dw, dw_ref)) << "wgrad, pow2 " << pow2;
    EXPECT_TRUE(test::same_bytes(yq, y_ref)) << "cached forward, pow2 " << pow2;
    EXPECT_TRUE(test::same_bytes(w.grad, dwq_ref)) << "cached wgrad, pow2 " << pow2;
  }
}
