// CPU GEMM against a naive triple loop in double, over every transpose, batching and dtype case.
#include <gtest/gtest.h>

#include "kernels/gemm.hpp"
#include "kernels/test_util.hpp"

using namespace r1;
using kernels::GemmOptions;

namespace {
// Naive reference of C = alpha op(A) op(B) + beta C0 in double; returns f32 host tensor.
Tensor naive_gemm(const Tensor& a, const Tensor& b, const Tensor& c0, const GemmOptions& o) {
  const kernels::GemmProblem p = kernels::check_gemm(a, b, c0, o);
  Tensor c = Tensor::host(c0.shape(), DType::f32);
  for (std::int64_t bt = 0; bt < p.batch; ++bt)
    for (std::int64_t i = 0; i < p.m; ++i)
      for (std::int64_t j = 0; j < p.n; ++j) {
        double acc = 0;
        for (std::int64_t l = 0; l < p.k; ++l) {
          const std::int64_t ia = bt * p.stride_a + (o.trans_a ? l * p.m + i : i * p.k + l);
          const std::int64_t ib = bt * p.stride_b + (o.trans_b ? j * p.k + l : l * p.n + j);
          acc += test::value(a, ia) * test::value(b, ib);
        }
        const std::int64_t ic = bt * p.stride_c + i * p.n + j;
        c.data<float>()[ic] = static_cast<float>(o.alpha * acc + (o.beta != 0 ? o.beta * test::value(c0, ic) : 0.0));
      }
  return c;
}

struct Case {
  Shape a, b, c;
  bool ta, tb;
};

void check_case(const Case& cs, DType in, DType out, float alpha, float beta) {
  const auto ctx = kernels::Context::cpu();
  const Tensor a = test::random_tensor(cs.a, in, 1), b = test::random_tensor(cs.b, in, 2);
  const Tensor c0 = test::random_tensor(cs.c, out, 3);
  const GemmOptions o{.trans_a = cs.ta, .trans_b = cs.tb, .alpha = alpha, .beta = beta};
  const Tensor expect = naive_gemm(a, b, c0, o);
  Tensor c = Tensor::host(cs.c, out);
  copy(c, c0);
  kernels::gemm(ctx, a, b, c, o);
  // Inputs are exact in both; only accumulation order and, for bf16 C, one rounding (2^-8 relative
  // to the largest entry) differ.
  const double mag = test::max_error(expect, Tensor::host_zeros(cs.c, DType::f32));
  const double tol = out == DType::f32 ? 1e-5 * (1 + mag) : 1e-5 * (1 + mag) + mag / 256;
  EXPECT_LE(test::max_error(c, expect), tol) << "A " << cs.a.str() << (cs.ta ? "T" : "") << " B " << cs.b.str()
                                             << (cs.tb ? "T" : "") << " " << dtype_name(in) << "->" << dtype_name(out);
}

const Case kCases[] = {
    {{5, 7}, {7, 3}, {5, 3}, false, false},       {{7, 5}, {7, 3}, {5, 3}, true, false},
    {{5, 7}, {3, 7}, {5, 3}, false, true},        {{7, 5}, {3, 7}, {5, 3}, true, true},
    {{4, 5, 7}, {4, 7, 3}, {4, 5, 3}, false, false}, {{4, 7, 5}, {4, 3, 7}, {4, 5, 3}, true, true},
    {{4, 5, 7}, {3, 7}, {4, 5, 3}, false, true},  // shared weight, folded batch
    {{5, 7}, {4, 7, 3}, {4, 5, 3}, false, false}, // shared A
    {{1, 1}, {1, 1}, {1, 1}, false, false},       {{33, 64}, {64, 17}, {33, 17}, false, false},
};
}  // namespace

TEST(GemmCpu, MatchesNaiveForAllTransposesAndBatching) {
  for (const Case& c : kCases) check_case(c, DType::f32, DType::f32, 1.0f, 0.0f);
}

TEST(GemmCpu, AppliesAlphaAndBeta) {
  for (const Case& c : kCases) check_case(c, DType::f32, DType::f32, -0.5f, 2.0f);
}

TEST(GemmCpu, Bf16InputsAndOutputs) {
  for (const Case& c : kCases) {
    check_case(c, DType::bf16, DType::f32, 1.0f, 0.0f);
    check_case(c, DType::bf16, DType::bf16, 1.5f, 1.0f);
  }
}

TEST(GemmCpu, EmptyInnerDimensionGivesBetaTimesC) {
  const auto ctx = kernels::Context::cpu();
  Tensor a = Tensor::host({3, 0}, DType::f32), b = Tensor::host({0, 2}, DType::f32);
  Tensor c = Tensor::host({3, 2}, DType::f32);
  for (int i = 0; i < 6; ++i) c.data<float>()[i] = 1.0f;
  kernels::gemm(ctx, a, b, c, {.beta = 3.0f});
  for (int i = 0; i < 6; ++i) EXPECT_EQ(c.data<float>()[i], 3.0f);
  kernels::gemm(ctx, a, b, c);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(c.data<float>()[i], 0.0f);
}

TEST(GemmCpu, MismatchedShapesNameBothShapes) {
  const auto ctx = kernels::Context::cpu();
  Tensor a = Tensor::host({4, 3}, DType::f32), b = Tensor::host({5, 6}, DType::f32), c = Tensor::host({4, 6}, DType::f32);
  try {
    kernels::gemm(ctx, a, b, c);
    FAIL() << "no throw";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_EQ(e.kind(), ErrorKind::user);
    EXPECT_NE(m.find("K = 3 from A and 5 from B"), std::string::npos) << m;
    EXPECT_NE(m.find("A f32[4, 3]"), std::string::npos) << m;
    EXPECT_NE(m.find("B f32[5, 6]"), std::string::npos) << m;
  }
  EXPECT_THROW(kernels::gemm(ctx, a, Tensor::host({3, 6}, DType::f32), Tensor::host({4, 5}, DType::f32)), Error);
  EXPECT_THROW(kernels::gemm(ctx, a, Tensor::host({3, 6}, DType::bf16), c), Error);
  EXPECT_THROW(kernels::gemm(ctx, Tensor::host({2, 4, 3}, DType::f32), Tensor::host({3, 3, 6}, DType::f32),
                             Tensor::host({2, 4, 6}, DType::f32)),
               Error);
}
