// CUDA version of kernels/moe_balance.hpp for its dispatch, defined in cuda/moe_balance.cu (CUDA builds only).
#pragma once
#include "kernels/moe_balance.hpp"

namespace r1::kernels::cuda {

void moe_balance_forward(const Context& ctx, const Tensor& scores, const Tensor& expert_idx, const BalanceParams& p,
                         const Tensor& loss, const Tensor& counts);
void moe_balance_backward(const Context& ctx, float dloss, const Tensor& scores, const Tensor& expert_idx,
                          const BalanceParams& p, const Tensor& dlogits);
void moe_bias_update(const Context& ctx, const Tensor& counts, float gamma, const Tensor& bias);

}  // namespace r1::kernels::cuda
