// CUDA version of kernels/moe_permute.hpp for its dispatch, defined in cuda/moe_permute.cu (CUDA builds only).
#pragma once
#include <vector>

#include "kernels/moe_permute.hpp"

namespace r1::kernels::cuda {

std::vector<std::int64_t> moe_permute(const Context& ctx, const Tensor& x, const Tensor& expert_idx,
                                      const Tensor& x_perm, const Tensor& row_of, const Tensor& expert_offsets);
void moe_combine(const Context& ctx, const Tensor& src, const Tensor& row_of, const Tensor& gates, const Tensor& y);
void moe_unpermute_backward(const Context& ctx, const Tensor& dy, const Tensor& y_perm, const Tensor& row_of,
                            const Tensor& gates, const Tensor& dy_perm, const Tensor& dgates);

}  // namespace r1::kernels::cuda
