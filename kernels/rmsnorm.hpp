// RMSNorm over the last dimension, as DeepSeek-V3 uses it (no mean subtraction, no bias):
// y = x * rstd * weight with rstd = 1 / sqrt(mean_j(x_j^2) + eps) per row.
#pragma once
#include "kernels/context.hpp"

namespace r1::kernels {

// x, y: [T, D] f32 or bf16 (one dtype; view batched activations as [T, D]); weight: f32 [D];
// rstd: f32 [T], written for the backward. Math and accumulation in f32.
void rmsnorm_forward(const Context& ctx, const Tensor& x, const Tensor& weight, float eps, const Tensor& y,
                     const Tensor& rstd);
// dy, dx: [T, D] f32 or bf16 (one dtype, which may differ from x's); dx may alias dy.
// dx = rstd * (weight * dy - x * rstd^2 * mean_j(weight_j dy_j x_j)).
// dweight: f32 [D], ACCUMULATED (dweight += sum_t dy * x * rstd) so that micro-batches add up; zero it
// before the first one. Deterministic on both backends (fixed-order partial sums, no atomics).
void rmsnorm_backward(const Context& ctx, const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& rstd,
                      const Tensor& dx, const Tensor& dweight);

}  // namespace r1::kernels
