// CPU reference of kernels/reduce.hpp: what its dispatch (kernels/reduce.cpp) calls on a CPU context.
#pragma once
#include "kernels/reduce.hpp"

namespace r1::kernels::cpu {

void reduce(ReduceOp op, const Tensor& x, const Tensor& out);
void reduce_rows(ReduceOp op, const Tensor& x, const Tensor& out);
void reduce_each(ReduceOp op, std::span<const Tensor> xs, const Tensor& out);

}  // namespace r1::kernels::cpu
