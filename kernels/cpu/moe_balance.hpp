// CPU reference of kernels/moe_balance.hpp: what its dispatch (kernels/moe_balance.cpp) calls on a CPU context.
#pragma once
#include "kernels/moe_balance.hpp"

namespace r1::kernels::cpu {

void moe_balance_forward(const Tensor& scores, const Tensor& expert_idx, const BalanceParams& p, const Tensor& loss,
                         const Tensor& counts);
void moe_balance_backward(float dloss, const Tensor& scores, const Tensor& expert_idx, const BalanceParams& p,
                          const Tensor& dlogits);
void moe_bias_update(const Tensor& counts, float gamma, const Tensor& bias);

}  // namespace r1::kernels::cpu
