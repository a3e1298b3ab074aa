// CPU reference of kernels/moe_permute.hpp: what its dispatch (kernels/moe_permute.cpp) calls on a CPU context.
#pragma once
#include <vector>

#include "kernels/moe_permute.hpp"

namespace r1::kernels::cpu {

std::vector<std::int64_t> moe_permute(const Tensor& x, const Tensor& expert_idx, const Tensor& x_perm,
                                      const Tensor& row_of, const Tensor& expert_offsets);
// y = sum_j w[t, j] * src[row_of[t, j]], with w = 1 where gates is undefined (the permute backward).
void moe_combine(const Tensor& src, const Tensor& row_of, const Tensor& gates, const Tensor& y);
void moe_unpermute_backward(const Tensor& dy, const Tensor& y_perm, const Tensor& row_of, const Tensor& gates,
                            const Tensor& dy_perm, const Tensor& dgates);

}  // namespace r1::kernels::cpu
