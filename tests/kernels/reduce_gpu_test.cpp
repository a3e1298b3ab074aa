// Per-row reductions on the GPU beyond parity with the CPU (the op table's GPU mode checks that): a row reduced
// alone gives the bits it gets inside the whole tensor. Labelled `gpu`: fails (never skips) without a CUDA device.
#include <gtest/gtest.h>

#include "kernels/reduce.hpp"
#include "kernels/test_util.hpp"

using namespace r1;
using kernels::Context;

TEST(ReduceRowsGpu, ARowAloneGivesTheSameBits) {
  const Context dev = test::gpu_context();
  for (auto [rows, cols] : {std::pair<std::int64_t, std::int64_t>{1, 1}, {5, 1000}, {64, 262144}, {3, 70001}}) {
    for (DType dt : {DType::f32, DType::bf16}) {
      const Tensor dx = dev.to_here(test::random_tensor({rows, cols}, dt, 12));
      for (auto op : {kernels::ReduceOp::sum, kernels::ReduceOp::sum_squares, kernels::ReduceOp::max_abs}) {
        Tensor g = dev.empty({rows}, DType::f32), g1 = dev.empty({1}, DType::f32);
        kernels::reduce_rows(dev, op, dx, g);
        const Tensor hg = test::to_host(g);
        for (std::int64_t r = 0; r < rows; ++r) {
          kernels::reduce_rows(dev, op, dx.slice(r, r + 1), g1);
          EXPECT_EQ(test::to_host(g1).data<float>()[0], hg.data<float>()[r])
              << "a row alone, same bits: " << kernels::reduce_op_name(op) << " " << rows << "x" << cols;
        }
      }
    }
  }
}
