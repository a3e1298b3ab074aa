// Every backward of the NN building blocks against central finite differences of its CPU forward
// (tests/kernels/gradcheck.hpp), on small f32 inputs. The scalar loss is L = sum_i w_i * out_i with fixed
// random weights w, so dL/dout = w is what each backward receives.
//
// Tolerance: 1e-3 of the largest gradient, with eps = 1e-2 (1e-3 for the rmsnorm weight). Outputs are
// f32, so each loss evaluation carries ~1e-7 relative rounding that the difference quotient divides by
// 2 eps, and the truncation error of central differences is O(eps^2 |L'''|); both stay well below 1e-3
// for O(1) inputs, while a wrong term in a backward formula is off by O(1).
#include <gtest/gtest.h>

#include <vector>

#include "kernels/cross_entropy.hpp"
#include "kernels/embedding.hpp"
#include "kernels/gradcheck.hpp"
#include "kernels/rmsnorm.hpp"
#include "kernels/rope.hpp"
#include "kernels/swiglu.hpp"
#include "kernels/test_util.hpp"

using namespace r1;
using kernels::Context;

namespace {
const Context cpu = Context::cpu();
constexpr double kTol = 1e-3;

// sum_i w_i * y_i in double.
double dot(const Tensor& w, const Tensor& y) {
  double s = 0;
  for (std::int64_t i = 0; i < y.numel(); ++i) s += test::value(w, i) * test::value(y, i);
  return s;
}
}  // namespace

TEST(NnGrad, RmsNormInputAndWeight) {
  const int rows = 4, d = 8;
  const Tensor x = test::random_tensor({rows, d}, DType::f32, 1), w = test::random_tensor({d}, DType::f32, 2);
  const Tensor wy = test::random_tensor({rows, d}, DType::f32, 3);
  Tensor y = Tensor::host({rows, d}, DType::f32), rstd = Tensor::host({rows}, DType::f32);
  const auto loss = [&] {
    kernels::rmsnorm_forward(cpu, x, w, 1e-5f, y, rstd);
    return dot(wy, y);
  };
  loss();
  Tensor dx = Tensor::host({rows, d}, DType::f32), dw = Tensor::host_zeros({d}, DType::f32);
  kernels::rmsnorm_backward(cpu, wy, x, w, rstd, dx, dw);
  const auto rx = test::gradcheck(loss, x, dx, 1e-2);
  EXPECT_LE(rx.relative(), kTol) << "dx: max error " << rx.max_abs_error;
  const auto rw = test::gradcheck(loss, w, dw, 1e-3);
  EXPECT_LE(rw.relative(), kTol) << "dweight: max error " << rw.max_abs_error;
}

TEST(NnGrad, Swiglu) {
  const int rows = 3, h = 5;
  const Tensor gu = test::random_tensor({rows, 2 * h}, DType::f32, 4, 2.0f), wo = test::random_tensor({rows, h}, DType::f32, 5);
  Tensor out = Tensor::host({rows, h}, DType::f32), dgu = Tensor::host({rows, 2 * h}, DType::f32);
  const auto loss = [&] {
    kernels::swiglu_forward(cpu, gu, out);
    return dot(wo, out);
  };
  kernels::swiglu_backward(cpu, wo, gu, dgu);
  const auto r = test::gradcheck(loss, gu, dgu, 1e-2);
  EXPECT_LE(r.relative(), kTol) << "max error " << r.max_abs_error;
}

TEST(NnGrad, RopeOfHeadSlices) {
  const int rows = 3, heads = 2, row = 10, offset = 2;
  const auto tab = kernels::rope_tables(cpu, {.rope_dim = 6}, 8);
  Tensor pos = Tensor::host({rows}, DType::i32);
  for (int t = 0; t < rows; ++t) pos.data<std::int32_t>()[t] = 2 * t + 1;
  const Tensor x = test::random_tensor({rows, heads, row}, DType::f32, 6), wy = test::random_tensor({rows, heads, row}, DType::f32, 7);
  Tensor y = Tensor::host({rows, heads, row}, DType::f32);
  const auto loss = [&] {
    copy(y, x);
    kernels::rope_forward(cpu, y, pos, tab, offset);
    return dot(wy, y);
  };
  Tensor dx = cpu.to_here(wy);
  kernels::rope_backward(cpu, dx, pos, tab, offset);
  const auto r = test::gradcheck(loss, x, dx, 1e-2);
  EXPECT_LE(r.relative(), kTol) << "max error " << r.max_abs_error;
}

TEST(NnGrad, CrossEntropyWithWeightsAndAnIgnoredToken) {
  const int rows = 3, v = 7;
  const Tensor logits = test::random_tensor({rows, v}, DType::f32, 8, 2.0f);
  Tensor tg = Tensor::host({rows}, DType::i32), dloss = Tensor::host({rows}, DType::f32);
  const std::int32_t targets[] = {4, -1, 0};
  const float weights[] = {0.7f, 0.9f, -1.3f};
  for (int t = 0; t < rows; ++t) {
    tg.data<std::int32_t>()[t] = targets[t];
    dloss.data<float>()[t] = weights[t];
  }
  Tensor losses = Tensor::host({rows}, DType::f32), lse = Tensor::host({rows}, DType::f32);
  const auto loss = [&] {
    kernels::cross_entropy_forward(cpu, logits, tg, losses, lse);
    return dot(dloss, losses);
  };
  loss();
  Tensor dl = Tensor::host({rows, v}, DType::f32);
  kernels::cross_entropy_backward(cpu, logits, tg, lse, dloss, dl);
  const auto r = test::gradcheck(loss, logits, dl, 1e-2);
  EXPECT_LE(r.relative(), kTol) << "max error " << r.max_abs_error;
}

TEST(NnGrad, EmbeddingTable) {
  const Tensor table = test::random_tensor({5, 4}, DType::f32, 9), wo = test::random_tensor({6, 4}, DType::f32, 10);
  Tensor ids = Tensor::host({6}, DType::i32);
  const std::int32_t vals[] = {1, 4, 1, 0, 1, 3};  // id 2 unused: its gradient must stay 0
  std::copy(vals, vals + 6, ids.data<std::int32_t>());
  Tensor out = Tensor::host({6, 4}, DType::f32);
  const auto loss = [&] {
    kernels::embedding_forward(cpu, table, ids, out);
    return dot(wo, out);
  };
  Tensor dtable = Tensor::host_zeros({5, 4}, DType::f32);
  kernels::embedding_backward(cpu, wo, ids, dtable);
  const auto r = test::gradcheck(loss, table, dtable, 1e-2);
  EXPECT_LE(r.relative(), kTol) << "max error " << r.max_abs_error;
}
