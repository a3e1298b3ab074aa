#include <gtest/gtest.h>

#include <cmath>

#include "kernels/reduce.hpp"
#include "kernels/test_util.hpp"

using namespace r1;
using kernels::ReduceOp;

TEST(ReduceCpu, EmptyTensorReducesToZero) {
  const auto ctx = kernels::Context::cpu();
  EXPECT_EQ(kernels::reduce_value(ctx, ReduceOp::sum, Tensor::host({0}, DType::f32)), 0.0f);
  EXPECT_EQ(kernels::reduce_value(ctx, ReduceOp::max_abs, Tensor::host({0}, DType::f32)), 0.0f);
}

TEST(ReduceCpu, OutputMustBeOneF32) {
  const auto ctx = kernels::Context::cpu();
  EXPECT_THROW(kernels::reduce(ctx, ReduceOp::sum, Tensor::host({4}, DType::f32), Tensor::host({2}, DType::f32)), Error);
}

// Each row reduced on its own: equal to a double loop over the row, and the same bits wherever the row sits.
TEST(ReduceCpu, RowsMatchADoubleLoopPerRow) {
  const auto ctx = kernels::Context::cpu();
  const std::int64_t rows = 7, cols = 1031;
  for (DType dt : {DType::f32, DType::bf16}) {
    const Tensor x = test::random_tensor({rows, cols}, dt, 10);
    for (auto op : {ReduceOp::sum, ReduceOp::sum_squares, ReduceOp::max_abs}) {
      Tensor out = Tensor::host({rows}, DType::f32), one = Tensor::host({1}, DType::f32);
      kernels::reduce_rows(ctx, op, x, out);
      for (std::int64_t r = 0; r < rows; ++r) {
        double acc = 0;
        for (std::int64_t c = 0; c < cols; ++c) {
          const double v = test::value(x, r * cols + c);
          acc = op == ReduceOp::sum ? acc + v : op == ReduceOp::sum_squares ? acc + v * v : std::max(acc, std::fabs(v));
        }
        EXPECT_EQ(out.data<float>()[r], static_cast<float>(acc)) << kernels::reduce_op_name(op) << " row " << r;
        kernels::reduce_rows(ctx, op, x.slice(r, r + 1), one);
        EXPECT_EQ(one.data<float>()[0], out.data<float>()[r]) << "a row alone";
      }
    }
  }
}
