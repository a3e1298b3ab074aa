#include <gtest/gtest.h>

#include "kernels/elementwise.hpp"
#include "kernels/test_util.hpp"

using namespace r1;

TEST(ElementwiseCpu, ScaleFillAndCast) {
  const auto ctx = kernels::Context::cpu();
  Tensor x = test::random_tensor({257}, DType::f32, 5);
  const Tensor x0 = Tensor::host({257}, DType::f32);
  copy(x0, x);
  kernels::scale(ctx, 3.0f, x);
  for (int i = 0; i < 257; ++i) EXPECT_EQ(x.data<float>()[i], 3.0f * x0.data<float>()[i]);
  kernels::fill(ctx, x, 0.25f);
  for (int i = 0; i < 257; ++i) EXPECT_EQ(x.data<float>()[i], 0.25f);

  Tensor h = Tensor::host({257}, DType::bf16), f8 = Tensor::host({257}, DType::f8e4m3);
  kernels::cast(ctx, x0, h);
  kernels::cast(ctx, x0, f8);
  for (int i = 0; i < 257; ++i) {
    EXPECT_EQ(h.data<bf16>()[i].bits, to_bf16(x0.data<float>()[i]).bits);
    EXPECT_EQ(f8.data<f8e4m3>()[i].bits, to_f8e4m3(x0.data<float>()[i]).bits);
  }
}

TEST(ElementwiseCpu, SizeMismatchIsAnError) {
  const auto ctx = kernels::Context::cpu();
  EXPECT_THROW(kernels::axpy(ctx, 1.0f, Tensor::host({3}, DType::f32), Tensor::host({4}, DType::f32)), Error);
  EXPECT_THROW(kernels::cast(ctx, Tensor::host({3}, DType::f32), Tensor::host({4}, DType::bf16)), Error);
  EXPECT_THROW(kernels::scale(ctx, 1.0f, Tensor::host({3}, DType::i32)), Error);
}
