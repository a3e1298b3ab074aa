// Full reductions of a tensor to one f32 value: sum, sum of squares, max |x|. Deterministic: the
// order of accumulation depends only on the element count, never on thread or block scheduling.
#pragma once
#include <span>

#include "kernels/context.hpp"

namespace r1::kernels {

enum class ReduceOp { sum, sum_squares, max_abs };
const char* reduce_op_name(ReduceOp op);

// out: f32[1] in ctx's memory. Work stays on the device queue (no host synchronisation).
void reduce(const Context& ctx, ReduceOp op, const Tensor& x, const Tensor& out);
// The reduction's value on the host (synchronises the device).
float reduce_value(const Context& ctx, ReduceOp op, const Tensor& x);
// One reduction per row of x [rows, cols] into out f32[rows], in one launch. A row's value depends only on
// that row's elements (f64 accumulation in an order fixed by cols), wherever the row sits in x.
void reduce_rows(const Context& ctx, ReduceOp op, const Tensor& x, const Tensor& out);
// One reduction per tensor of `xs` (any shapes, one dtype, contiguous) into out f32[xs.size()], in one launch
// over a device table of {pointer, length}: a multi-tensor reduce_rows, each value the bits reduce_rows gives
// for that tensor as a row (the optimizer's gradient norm over every chunk of every gradient).
void reduce_each(const Context& ctx, ReduceOp op, std::span<const Tensor> xs, const Tensor& out);

}  // namespace r1::kernels
