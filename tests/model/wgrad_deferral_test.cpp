// model/wgrad_deferral: under a DeferWgrad scope the weight-gradient GEMMs of linear layers (plain, by rows,
// grouped by expert; f32 and FP8) leave the gradient untouched and hold copies of their inputs,
// so the backward may overwrite its buffers; draining the queue then gives the gradient the immediate GEMMs
// give, bit for bit (the same GEMMs in the same order).
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "kernels/elementwise.hpp"
#include "kernels/test_util.hpp"
#include "model/linear.hpp"
#include "model/wgrad_deferral.hpp"

using namespace r1;
using kernels::Context;

namespace {
const Context kCpu = Context::cpu();
constexpr std::int64_t kT = 150, kIn = 200, kOut = 140, kE = 3;

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

struct Inputs {
  Tensor x = test::random_tensor({kT, kIn}, DType::f32, 1), dy = test::random_tensor({kT, kOut}, DType::f32, 2);
  Tensor x2 = test::random_tensor({kT, kIn}, DType::f32, 3), dy_rows = test::random_tensor({kT, 40}, DType::f32, 4);
  Tensor dy_experts = test::random_tensor({kT, kOut}, DType::f32, 5);
  std::vector<std::int64_t> offsets{0, 70, 70, kT};  // an expert without tokens
};

// Every kind of weight-gradient GEMM, twice on one weight so that the order of accumulation matters.
void weight_grads(const Inputs& in, const Param& w, const Param& experts) {
  linear_wgrad(kCpu, in.dy, in.x, w);
  linear_wgrad(kCpu, in.dy_rows, in.x2, w, {.begin = 100, .end = 140});
  linear_wgrad(kCpu, in.dy, in.x2, w);
  grouped_linear_wgrad(kCpu, in.dy_experts, in.x, experts, in.offsets);
  grouped_linear_wgrad(kCpu, in.dy, in.x2, experts, in.offsets);
}
}  // namespace

TEST(WgradDeferral, DrainingGivesTheImmediateGradientsBitForBitAfterTheInputsAreOverwritten) {
  for (bool fp8 : {false, true}) {
    SCOPED_TRACE(fp8 ? "fp8" : "f32");
    ParamStore store(kCpu, DType::f32, fp8);
    Param& w = use_fp8(store, store.add("w", {kOut, kIn}, Init::normal));
    Param& experts = use_fp8(store, store.add("experts", {kE, kOut, kIn}, Init::normal));
    store.initialize(5, 0.05);
    const Inputs in;
    weight_grads(in, w, experts);
    const Tensor want_w = kCpu.to_here(w.grad), want_experts = kCpu.to_here(experts.grad);
    store.zero_grads();

    Inputs scratch;  // the backward's buffers, overwritten once the deferred GEMMs are queued
    WgradQueue queue;
    {
      DeferWgrad scope(queue);
      EXPECT_EQ(deferring_wgrad(), &queue);
      weight_grads(scratch, w, experts);
    }
    EXPECT_EQ(deferring_wgrad(), nullptr);
    EXPECT_FALSE(queue.empty());
    const std::size_t x = kT * kIn * 4, dy = kT * kOut * 4;
    EXPECT_EQ(queue.bytes_held(), 4 * (x + dy) + x + kT * 40 * 4);  // copies of what each of the 5 GEMMs reads
    const Tensor zeros = kCpu.zeros(w.grad.shape(), DType::f32);
    EXPECT_TRUE(same_bits(w.grad, zeros)) << "a deferred GEMM ran early";
    for (const Tensor& t : {scratch.x, scratch.dy, scratch.x2, scratch.dy_rows, scratch.dy_experts}) kernels::fill(kCpu, t, 7.0f);

    queue.drain();
    EXPECT_TRUE(queue.empty());
    EXPECT_EQ(queue.bytes_held(), 0u);
    EXPECT_TRUE(same_bits(w.grad, want_w));
    EXPECT_TRUE(same_bits(experts.grad, want_experts));
  }
}

TEST(WgradDeferral, WithoutAScopeTheGemmsRunAtOnce) {
  ParamStore store(kCpu, DType::f32);
  Param& w = store.add("w", {kOut, kIn}, Init::normal);
  store.initialize(5, 0.05);
  const Inputs in;
  ASSERT_EQ(deferring_wgrad(), nullptr);
  linear_wgrad(kCpu, in.dy, in.x, w);
  EXPECT_FALSE(same_bits(w.grad, kCpu.zeros(w.grad.shape(), DType::f32)));
}
