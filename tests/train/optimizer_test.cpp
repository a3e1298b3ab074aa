#include <gtest/gtest.h>

#include <cmath>

#include "kernels/elementwise.hpp"
#include "kernels/reduce.hpp"
#include "train/optimizer.hpp"

using namespace r1;

TEST(LrSchedule, WarmupThenCosineToMinLr) {
  LrSchedule s{.shape = LrSchedule::Shape::cosine, .lr = 1.0, .min_lr = 0.1, .warmup = 10, .decay = 100};
  EXPECT_DOUBLE_EQ(s.at(1), 0.1);
  EXPECT_DOUBLE_EQ(s.at(10), 1.0);
  EXPECT_NEAR(s.at(60), 0.55, 1e-12);  // half-way down the cosine
  EXPECT_NEAR(s.at(110), 0.1, 1e-12);
  EXPECT_NEAR(s.at(500), 0.1, 1e-12);  // stays at min_lr after the decay
}

TEST(LrSchedule, WsdIsStableThenDecaysLinearlyAtTheEnd) {
  LrSchedule s{.shape = LrSchedule::Shape::wsd, .lr = 1.0, .min_lr = 0.0, .warmup = 0, .decay = 20, .total = 100};
  EXPECT_DOUBLE_EQ(s.at(1), 1.0);
  EXPECT_DOUBLE_EQ(s.at(80), 1.0);
  EXPECT_DOUBLE_EQ(s.at(90), 0.5);
  EXPECT_DOUBLE_EQ(s.at(100), 0.0);
  LrSchedule c{.shape = LrSchedule::Shape::constant, .lr = 0.3};
  EXPECT_DOUBLE_EQ(c.at(12345), 0.3);
}

TEST(AdamW, OneStepMatchesTheFormulaWithDecayOnlyWhereAllowed) {
  ParamStore ps(kernels::Context::cpu(), DType::f32);
  Param& w = ps.add("w", {2}, Init::zeros);
  Param& n = ps.add("n", {1}, Init::ones, /*decay=*/false);
  n.master.data<float>()[0] = 1.0f;
  w.master.data<float>()[0] = 1.0f;
  w.master.data<float>()[1] = -2.0f;
  w.grad.data<float>()[0] = 0.5f;
  w.grad.data<float>()[1] = 0.0f;
  n.grad.data<float>()[0] = -1.0f;
  GradReducer grads(ps, {});
  AdamW opt(ps, {.beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1, .grad_clip = 0}, grads);
  EXPECT_NEAR(opt.step(0.01), std::sqrt(0.25 + 1.0), 1e-6);
  // First step: m_hat = g, v_hat = g^2, update = lr * g / (|g| + eps); decay p *= (1 - lr wd) first.
  EXPECT_NEAR(w.master.data<float>()[0], 1.0 * (1 - 0.001) - 0.01, 1e-6);
  EXPECT_NEAR(w.master.data<float>()[1], -2.0 * (1 - 0.001), 1e-6);
  EXPECT_NEAR(n.master.data<float>()[0], 1.0 + 0.01, 1e-6);  // no decay on norms
}

TEST(AdamW, ClipsByTheGlobalNorm) {
  ParamStore ps(kernels::Context::cpu(), DType::f32);
  Param& a = ps.add("a", {1}, Init::zeros);
  Param& b = ps.add("b", {1}, Init::zeros);
  a.grad.data<float>()[0] = 3.0f;
  b.grad.data<float>()[0] = 4.0f;
  GradReducer grads(ps, {});
  AdamW opt(ps, {.weight_decay = 0, .grad_clip = 1.0}, grads);
  EXPECT_NEAR(opt.grad_norm(), 5.0, 1e-6);
  EXPECT_NEAR(opt.step(1.0), 5.0, 1e-6);
  // Adam's first step is sign-like whatever the scale: clipping keeps the direction, step = lr.
  EXPECT_NEAR(a.master.data<float>()[0], -1.0, 1e-5);
  EXPECT_NEAR(b.master.data<float>()[0], -1.0, 1e-5);
  a.grad.data<float>()[0] = NAN;
  EXPECT_THROW(opt.step(1.0), Error);
}

// The norm is one multi-tensor launch over every gradient chunk; each chunk's f32 sum of squares is the one
// reduce_rows gives (what every layout agrees on), added in parameter order in double.
TEST(AdamW, GradNormSumsEveryChunkAsReduceRowsDoes) {
  ParamStore ps(kernels::Context::cpu(), DType::f32);
  Param& a = ps.add("a", {3, 7}, Init::zeros);
  Param& b = ps.add("b", {5}, Init::zeros);
  for (Param* p : {&a, &b})
    for (std::int64_t i = 0; i < p->grad.numel(); ++i) p->grad.data<float>()[i] = 0.37f * static_cast<float>(i) - 1.1f;
  GradReducer grads(ps, {}, /*min_chunk=*/4);
  ASSERT_GT(grads.chunk(0), 1);
  ASSERT_LT(grads.chunk(0), a.grad.numel());  // a is cut into several chunks, the last one partial
  double want = 0;
  for (std::size_t i = 0; i < 2; ++i) {
    const Tensor g = ps.all()[i]->grad.view({ps.all()[i]->grad.numel()});
    for (std::int64_t lo = 0; lo < g.numel(); lo += grads.chunk(i)) {
      const Tensor row = g.slice(lo, std::min(lo + grads.chunk(i), g.numel()));
      Tensor sum = Tensor::host({1}, DType::f32);
      kernels::reduce_rows(kernels::Context::cpu(), kernels::ReduceOp::sum_squares, row.view({1, row.numel()}), sum);
      want += sum.data<float>()[0];
    }
  }
  AdamW opt(ps, {}, grads);
  EXPECT_EQ(opt.grad_norm(), std::sqrt(want));
}

namespace {
// Two parameters (one without weight decay) with fixed gradients, moments stored in `moments`.
struct TwoParams {
  ParamStore ps{kernels::Context::cpu(), DType::f32};
  GradReducer grads;
  AdamW opt;
  explicit TwoParams(DType moments)
      : grads((add(ps), ps), {}), opt(ps, {.weight_decay = 0.1, .grad_clip = 0, .moments = moments}, grads) {}
  static void add(ParamStore& ps) {
    Param& w = ps.add("w", {300}, Init::zeros);
    Param& n = ps.add("n", {7}, Init::ones, /*decay=*/false);
    for (Param* p : {&w, &n})
      for (std::int64_t i = 0; i < p->master.numel(); ++i) {
        p->master.data<float>()[i] = std::sin(0.3f * static_cast<float>(i)) + 0.5f;
        p->grad.data<float>()[i] = 1e-3f * std::cos(0.7f * static_cast<float>(i)) - 2e-4f;
      }
  }
};
}  // namespace

// BF16 moments (DeepSeek-V3): the step's math in f32, the moments rounded to nearest even on store. The first
// step's update uses the unrounded moments, so the weights match FP32 moments' bit for bit and the stored
// moments are FP32's rounded; later steps stay within a bf16 rounding of the update.
TEST(AdamW, Bf16MomentsAreFp32MomentsRoundedToNearestEven) {
  TwoParams f(DType::f32), h(DType::bf16);
  ASSERT_EQ(h.opt.exp_avg()[0].dtype(), DType::bf16);
  f.opt.step(1e-2);
  h.opt.step(1e-2);
  for (std::size_t i = 0; i < 2; ++i) {
    const Param& pf = *f.ps.all()[i];
    const Param& ph = *h.ps.all()[i];
    for (std::int64_t j = 0; j < pf.master.numel(); ++j) {
      ASSERT_EQ(pf.master.data<float>()[j], ph.master.data<float>()[j]) << pf.name << "[" << j << "]";
      ASSERT_EQ(to_bf16(f.opt.exp_avg()[i].data<float>()[j]).bits, h.opt.exp_avg()[i].data<bf16>()[j].bits);
      ASSERT_EQ(to_bf16(f.opt.exp_avg_sq()[i].data<float>()[j]).bits, h.opt.exp_avg_sq()[i].data<bf16>()[j].bits);
    }
  }
  for (int s = 0; s < 4; ++s) {
    f.opt.step(1e-2);
    h.opt.step(1e-2);
  }
  double worst = 0;
  for (std::size_t i = 0; i < 2; ++i)
    for (std::int64_t j = 0; j < f.ps.all()[i]->master.numel(); ++j)
      worst = std::max(worst, std::fabs(double(f.ps.all()[i]->master.data<float>()[j]) - h.ps.all()[i]->master.data<float>()[j]));
  EXPECT_GT(worst, 0.0);       // the rounding did change something
  EXPECT_LT(worst, 5 * 1e-2 * 0.01);  // five steps of lr, each off by well under 1%
}

// A checkpoint's moments load into either precision: whole tensors of the stored dtype to read into, then
// converted to the kept one (f32 -> bf16 rounds to nearest even, bf16 -> f32 is exact).
TEST(AdamW, LoadedMomentsAreConvertedToTheKeptPrecision) {
  for (auto [kept, stored] : {std::pair{DType::bf16, DType::f32}, std::pair{DType::f32, DType::bf16}}) {
    TwoParams t(kept);
    AdamW::Moments in = t.opt.moments_to_load(stored);
    ASSERT_EQ(in.exp_avg[0].dtype(), stored);
    ASSERT_NE(in.exp_avg[0].raw(), t.opt.exp_avg()[0].raw());
    Tensor want = Tensor::host({300}, DType::f32);
    for (std::int64_t j = 0; j < 300; ++j) want.data<float>()[j] = 1e-3f * std::sin(1.3f * static_cast<float>(j)) + 1e-5f;
    kernels::cast(kernels::Context::cpu(), want, in.exp_avg[0].view({300}));
    kernels::cast(kernels::Context::cpu(), want, in.exp_avg_sq[0].view({300}));
    t.opt.keep_loaded(in);
    Tensor got = Tensor::host({300}, DType::f32), rounded = Tensor::host({300}, DType::f32);
    kernels::cast(kernels::Context::cpu(), t.opt.exp_avg_sq()[0], got);
    kernels::cast(kernels::Context::cpu(), in.exp_avg_sq[0], rounded);  // the stored value, rounded where stored is bf16
    for (std::int64_t j = 0; j < 300; ++j)
      ASSERT_EQ(to_bf16(got.data<float>()[j]).bits, to_bf16(rounded.data<float>()[j]).bits) << j;
    if (kept == DType::f32) {
      for (std::int64_t j = 0; j < 300; ++j) ASSERT_EQ(got.data<float>()[j], rounded.data<float>()[j]) << j;
    }
  }
}
