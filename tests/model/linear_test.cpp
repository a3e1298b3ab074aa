// model/linear under precision fp8: the three GEMMs of a linear layer (and their grouped forms for the routed
// experts) equal the exact GEMMs of the dequantised operands that V3's recipe quantises (x and dy in 1 x 128
// tiles along the inner dimension, dy and x along the tokens for the weight gradient, W in 128 x 128 blocks),
// the weight's copies are made again after the optimizer moves it, and without fp8 the layer is kernels::gemm.
// (Finite differences of an FP8-emulated forward say nothing: its rounding is not differentiable.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "kernels/elementwise.hpp"
#include "kernels/fp8.hpp"
#include "kernels/fp8_experts.hpp"
#include "kernels/gemm.hpp"
#include "kernels/test_util.hpp"
#include "model/linear.hpp"
#include "support/norms.hpp"

using namespace r1;
using kernels::Context;

namespace {
const Context kCpu = Context::cpu();

// x after quantisation in (br x bc) tiles and back, in f32 (pow2: power-of-two scales).
Tensor fake_quant(const Tensor& x, int br, int bc, bool pow2 = false) {
  auto q = kernels::make_fp8(kCpu, x.dim(0), x.dim(1), br, bc);
  q.pow2_scales = pow2;
  kernels::quantize_fp8(kCpu, x, q);
  Tensor y = Tensor::host(x.shape(), DType::f32);
  kernels::dequantize_fp8(kCpu, q, y);
  return y;
}
Tensor transposed(const Tensor& x) {
  Tensor t = Tensor::host({x.dim(1), x.dim(0)}, DType::f32);
  for (std::int64_t r = 0; r < x.dim(0); ++r)
    for (std::int64_t c = 0; c < x.dim(1); ++c) t.data<float>()[c * x.dim(0) + r] = x.data<float>()[r * x.dim(1) + c];
  return t;
}
// a b^T in double.
std::vector<double> abt(const Tensor& a, const Tensor& b) {
  std::vector<double> c(static_cast<std::size_t>(a.dim(0) * b.dim(0)));
  for (std::int64_t i = 0; i < a.dim(0); ++i)
    for (std::int64_t j = 0; j < b.dim(0); ++j)
      for (std::int64_t k = 0; k < a.dim(1); ++k)
        c[static_cast<std::size_t>(i * b.dim(0) + j)] += double{a.data<float>()[i * a.dim(1) + k]} * b.data<float>()[j * a.dim(1) + k];
  return c;
}
void expect_close(const Tensor& got, const std::vector<double>& want, const char* what) {
  double scale = 0;
  for (double v : want) scale = std::max(scale, std::fabs(v));
  for (std::int64_t i = 0; i < got.numel(); ++i)
    ASSERT_NEAR(got.data<float>()[i], want[static_cast<std::size_t>(i)], 2e-6 * scale) << what << " at " << i;
}

// T tokens, a weight [out, in] with partial 128-tiles on every side.
constexpr std::int64_t kT = 150, kIn = 200, kOut = 140;
}  // namespace

TEST(LinearFp8, ItsThreeGemmsAreTheExactGemmsOfTheQuantisedOperands) {
  for (bool pow2 : {false, true}) {  // [train] fp8_scale = fp32, pow2
    ParamStore store(kCpu, DType::f32, /*fp8=*/true, pow2);
    Param& w = use_fp8(store, store.add("w", {kOut, kIn}, Init::normal));
    store.initialize(5, 0.05);
    ASSERT_TRUE(w.fp8);
    const Tensor x = test::random_tensor({kT, kIn}, DType::f32, 1), dy = test::random_tensor({kT, kOut}, DType::f32, 2);

    Tensor y = Tensor::host({kT, kOut}, DType::f32);
    linear_forward(kCpu, x, w, y);
    expect_close(y, abt(fake_quant(x, 1, 128, pow2), fake_quant(w.master, 128, 128, pow2)), "forward");

    Tensor dx = Tensor::host({kT, kIn}, DType::f32);
    linear_dgrad(kCpu, dy, w, dx, false);  // dx = dy W: W^T in 128 x 128 blocks is W's blocks transposed
    expect_close(dx, abt(fake_quant(dy, 1, 128, pow2), transposed(fake_quant(w.master, 128, 128, pow2))), "dgrad");

    linear_wgrad(kCpu, dy, x, w);  // dW = dy^T x, both quantised along the tokens
    expect_close(w.grad, abt(fake_quant(transposed(dy), 1, 128, pow2), fake_quant(transposed(x), 1, 128, pow2)), "wgrad");
  }
  // The two scale rules quantise differently: pow2 is no relabelling of fp32.
  EXPECT_NE(std::memcmp(fake_quant(test::random_tensor({kT, kIn}, DType::f32, 1), 1, 128).raw(),
                        fake_quant(test::random_tensor({kT, kIn}, DType::f32, 1), 1, 128, true).raw(), kT * kIn * 4), 0);
}

TEST(LinearFp8, GroupedExpertsAreTheExactGemmsOfEachExpertsQuantisedRows) {
  ParamStore store(kCpu, DType::f32, true);
  constexpr std::int64_t kE = 3;
  Param& w = use_fp8(store, store.add("experts", {kE, kOut, kIn}, Init::normal));
  store.initialize(6, 0.05);
  const std::vector<std::int64_t> offsets{0, 70, 70, kT};  // an expert without tokens
  const Tensor x = test::random_tensor({kT, kIn}, DType::f32, 3), dy = test::random_tensor({kT, kOut}, DType::f32, 4);
  Tensor y = Tensor::host({kT, kOut}, DType::f32), dx = Tensor::host({kT, kIn}, DType::f32);
  grouped_linear_forward(kCpu, x, w, y, offsets);
  grouped_linear_dgrad(kCpu, dy, w, dx, offsets);
  grouped_linear_wgrad(kCpu, dy, x, w, offsets);
  for (std::int64_t e = 0; e < kE; ++e) {
    const std::int64_t lo = offsets[e], hi = offsets[e + 1];
    const Tensor we = fake_quant(w.master.slice(e, e + 1).view({kOut, kIn}), 128, 128);
    const Tensor ge = w.grad.slice(e, e + 1).view({kOut, kIn});
    if (hi == lo) {
      for (std::int64_t i = 0; i < ge.numel(); ++i) ASSERT_EQ(ge.data<float>()[i], 0.0f) << "expert without tokens";
      continue;
    }
    const Tensor xe = x.slice(lo, hi), dye = dy.slice(lo, hi);
    expect_close(y.slice(lo, hi), abt(fake_quant(xe, 1, 128), we), "grouped forward");
    expect_close(dx.slice(lo, hi), abt(fake_quant(dye, 1, 128), transposed(we)), "grouped dgrad");
    // Each expert's tokens start their own 128-token tiles.
    expect_close(ge, abt(fake_quant(transposed(dye), 1, 128), fake_quant(transposed(xe), 1, 128)), "grouped wgrad");
  }
}

// The grouped FP8 path (every expert quantised in one pass, scales in the GEMM's layout, kernels::fp8_gemm_experts)
// against the per-expert loop it replaced, bit for bit: forward, dgrad, wgrad and the cached-input forward and
// wgrad, for ragged token counts (0, 1, 15, 16, 17, 127, 129).
TEST(LinearFp8, GroupedExpertsEqualThePerExpertLoopBitForBit) {
  const std::vector<std::int64_t> offsets = test::ragged_offsets();
  const std::int64_t experts = static_cast<std::int64_t>(offsets.size()) - 1, tokens = offsets.back();
  for (bool pow2 : {false, true}) {
    ParamStore store(kCpu, DType::f32, true, pow2);
    Param& w = use_fp8(store, store.add("experts", {experts, kOut, kIn}, Init::normal));
    store.initialize(13, 0.05);
    const Tensor x = test::random_tensor({tokens, kIn}, DType::f32, 14), dy = test::random_tensor({tokens, kOut}, DType::f32, 15);
    const auto zeros = [](const Shape& s) { return Tensor::host_zeros(s, DType::f32); };
    Tensor y = zeros({tokens, kOut}), dx = zeros({tokens, kIn}), yq = zeros({tokens, kOut});
    Tensor y_ref = zeros({tokens, kOut}), dx_ref = zeros({tokens, kIn}), dw_ref = zeros(w.grad.shape());
    grouped_linear_forward(kCpu, x, w, y, offsets);
    grouped_linear_dgrad(kCpu, dy, w, dx, offsets);
    grouped_linear_wgrad(kCpu, dy, x, w, offsets);
    test::expert_loop_forward(kCpu, test::expert_rows_alone(kCpu, x, offsets, pow2), w.master, false, pow2, y_ref, offsets);
    test::expert_loop_forward(kCpu, test::expert_rows_alone(kCpu, dy, offsets, pow2), w.master, true, pow2, dx_ref, offsets);
    test::expert_loop_wgrad(kCpu, dy, x, pow2, dw_ref, offsets);
    EXPECT_TRUE(test::same_bytes(y, y_ref)) << "forward, pow2 " << pow2;
    EXPECT_TRUE(test::same_bytes(dx, dx_ref)) << "dgrad, pow2 " << pow2;
    EXPECT_TRUE(test::same_bytes(w.grad, dw_ref)) << "wgrad, pow2 " << pow2;

    const kernels::Fp8Tensor xq = linear_quantize_input(kCpu, x, w);
    grouped_linear_forward(kCpu, xq, w, yq, offsets);
    EXPECT_TRUE(test::same_bytes(yq, y_ref)) << "cached forward, pow2 " << pow2;
    store.zero_grads();
    grouped_linear_wgrad(kCpu, dy, xq, w, offsets);
    Tensor x_cached = zeros({tokens, kIn}), dwq_ref = zeros(w.grad.shape());
    kernels::dequantize_fp8(kCpu, xq, x_cached);
    test::expert_loop_wgrad(kCpu, dy, x_cached, pow2, dwq_ref, offsets);
    EXPECT_TRUE(test::same_bytes(w.grad, dwq_ref)) << "cached wgrad, pow2 " << pow2;
  }
}

TEST(LinearFp8, TheWeightIsQuantisedOncePerChangeOfItsMaster) {
  ParamStore store(kCpu, DType::f32, true);
  Param& w = use_fp8(store, store.add("w", {kOut, kIn}, Init::normal));
  store.initialize(7, 0.05);
  const Tensor x = test::random_tensor({kT, kIn}, DType::f32, 5);
  Tensor y1 = Tensor::host({kT, kOut}, DType::f32), y2 = Tensor::host({kT, kOut}, DType::f32);
  linear_forward(kCpu, x, w, y1);
  kernels::scale(kCpu, 2.0f, w.master);
  linear_forward(kCpu, x, w, y2);  // the cached copy: the master moved without telling the store
  EXPECT_EQ(std::memcmp(y1.raw(), y2.raw(), y1.nbytes()), 0);
  store.weights_changed();  // what the optimizer step does
  linear_forward(kCpu, x, w, y2);
  for (std::int64_t i = 0; i < y1.numel(); ++i) ASSERT_EQ(y2.data<float>()[i], 2.0f * y1.data<float>()[i]) << i;
}

TEST(LinearFp8, WithoutFp8ALinearIsKernelsGemm) {
  ParamStore store(kCpu, DType::f32);  // fp32 training: use_fp8 marks nothing
  Param& w = use_fp8(store, store.add("w", {kOut, kIn}, Init::normal));
  store.initialize(8, 0.05);
  EXPECT_FALSE(w.fp8);
  const Tensor x = test::random_tensor({kT, kIn}, DType::f32, 6);
  Tensor y = Tensor::host({kT, kOut}, DType::f32), ref = Tensor::host({kT, kOut}, DType::f32);
  linear_forward(kCpu, x, w, y);
  kernels::gemm(kCpu, x, w.compute, ref, {.trans_b = true});
  EXPECT_EQ(std::memcmp(y.raw(), ref.raw(), y.nbytes()), 0);
}

// The routed experts' input cached in FP8 (quantised before the dispatch): the forward from the cached tiles is
// the forward from x, bit for bit; each expert's weight gradient is the exact GEMM of dy_e and the cached x_e,
// both quantised along the expert's tokens. With FP32 scales x is rounded twice, on two grids: 4.3e-2 relative L2
// from the weight gradient of x itself (measured). With power-of-two scales (V3's choice for these activations)
// an E4M3 value rescaled by a power of two is again one, so the second rounding is exact but for subnormals:
// measured 0.
TEST(LinearFp8, GroupedExpertsFromACachedFp8InputMatchTheirUncachedForward) {
  constexpr std::int64_t kE = 3;
  const std::vector<std::int64_t> offsets{0, 70, 70, kT};
  for (bool pow2 : {false, true}) {
    ParamStore store(kCpu, DType::f32, true, pow2);
    Param& w = use_fp8(store, store.add("experts", {kE, kOut, kIn}, Init::normal));
    store.initialize(10, 0.05);
    const Tensor x = test::random_tensor({kT, kIn}, DType::f32, 9), dy = test::random_tensor({kT, kOut}, DType::f32, 10);
    const kernels::Fp8Tensor xq = linear_quantize_input(kCpu, x, w);
    Tensor y = Tensor::host({kT, kOut}, DType::f32), y_ref = Tensor::host({kT, kOut}, DType::f32);
    grouped_linear_forward(kCpu, xq, w, y, offsets);
    grouped_linear_forward(kCpu, x, w, y_ref, offsets);
    EXPECT_EQ(std::memcmp(y.raw(), y_ref.raw(), y.nbytes()), 0) << "pow2 " << pow2;

    grouped_linear_wgrad(kCpu, dy, xq, w, offsets);
    const Tensor x_cached = fake_quant(x, 1, 128, pow2);
    for (std::int64_t e : {0, 2}) {
      const std::int64_t lo = offsets[e], hi = offsets[e + 1];
      expect_close(w.grad.slice(e, e + 1).view({kOut, kIn}),
                   abt(fake_quant(transposed(dy.slice(lo, hi)), 1, 128, pow2),
                       fake_quant(transposed(x_cached.slice(lo, hi)), 1, 128, pow2)),
                   "grouped wgrad from the cache");
    }
    Tensor from_cache = Tensor::host(w.grad.shape(), DType::f32);
    std::memcpy(from_cache.raw(), w.grad.raw(), from_cache.nbytes());
    store.zero_grads();
    grouped_linear_wgrad(kCpu, dy, x, w, offsets);
    const double extra = test::rel_l2(from_cache, w.grad);
    if (pow2) {
      EXPECT_LT(extra, 1e-4) << "power-of-two rescaling of E4M3 values is exact but for subnormals";
    } else {
      EXPECT_GT(extra, 0.0) << "the second rounding is visible";
      EXPECT_LT(extra, 6e-2) << "one more E4M3 rounding of x (3 mantissa bits)";
    }
    std::printf("  expert wgrad from the FP8 cache vs from x (pow2 %d): rel L2 %.2e\n", pow2 ? 1 : 0, extra);
  }
}

TEST(LinearFp8, ACachedInputNeedsAnFp8Weight) {
  ParamStore store(kCpu, DType::f32);
  Param& w = use_fp8(store, store.add("plain", {kOut, kIn}, Init::normal));
  store.initialize(11, 0.05);
  EXPECT_THROW(linear_quantize_input(kCpu, test::random_tensor({kT, kIn}, DType::f32, 1), w), Error);
}
