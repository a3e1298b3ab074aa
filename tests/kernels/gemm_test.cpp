// CPU GEMM edge cases: an empty inner dimension and mismatched shapes. Its cases against a naive loop are in
// the op table (tests/kernels/op_cases_blas.cpp).
#include <gtest/gtest.h>

#include "kernels/gemm.hpp"

using namespace r1;

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
