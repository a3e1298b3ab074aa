// CUDA version of kernels/reduce.hpp for its dispatch, defined in cuda/reduce.cu (CUDA builds only).
#pragma once
#include "kernels/reduce.hpp"

namespace r1::kernels::cuda {

void reduce(const Context& ctx, ReduceOp op, const Tensor& x, const Tensor& out);
void reduce_rows(const Context& ctx, ReduceOp op, const Tensor& x, const Tensor& out);
void reduce_each(const Context& ctx, ReduceOp op, std::span<const Tensor> xs, const Tensor& out);

}  // namespace r1::kernels::cuda
