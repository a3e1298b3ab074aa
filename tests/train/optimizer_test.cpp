#include <gtest/gtest.h>

#include <cmath>

#include "kernels/elementwise.hpp"
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
