// MoE token permutation: rows of x regrouped by expert for the grouped expert GEMMs (dispatch), the
// gate-weighted sum back to token order (combine), and both backwards.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/context.hpp"

namespace r1::kernels {

// x [T, D] (any dtype), expert_idx i32 [T, k] -> x_perm [T*k, D] (x's dtype): the (token, slot) pairs in
// ascending expert order, stable (within an expert by token, then slot); row_of i32 [T, k]: the row of
// x_perm that holds pair (t, j); expert_offsets i32 [E+1]: expert e owns rows [off_e, off_e+1).
// Returns the offsets on the host as well (the grouped GEMM needs the sizes; synchronises the device once).
// An expert index outside [0, E), E = expert_offsets.dim(0) - 1, is a user error.
std::vector<std::int64_t> moe_permute(const Context& ctx, const Tensor& x, const Tensor& expert_idx,
                                      const Tensor& x_perm, const Tensor& row_of, const Tensor& expert_offsets);
// dx [T, D] = sum_j dx_perm[row_of[t, j]] (f32 accumulation, slot order); dx and dx_perm f32 or bf16, one dtype.
void moe_permute_backward(const Context& ctx, const Tensor& dx_perm, const Tensor& row_of, const Tensor& dx);

// y [T, D] = sum_j gates[t, j] * y_perm[row_of[t, j]] (f32 accumulation, slot order); gates f32 [T, k];
// y and y_perm f32 or bf16, one dtype.
void moe_unpermute(const Context& ctx, const Tensor& y_perm, const Tensor& row_of, const Tensor& gates, const Tensor& y);
// dy_perm[row_of[t, j]] = gates[t, j] * dy[t]; dgates f32 [t, j] = dot(dy[t], y_perm[row_of[t, j]]).
void moe_unpermute_backward(const Context& ctx, const Tensor& dy, const Tensor& y_perm, const Tensor& row_of,
                            const Tensor& gates, const Tensor& dy_perm, const Tensor& dgates);

}  // namespace r1::kernels
