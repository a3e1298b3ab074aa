// CPU reference of kernels/moe_router.hpp: what its dispatch (kernels/moe_router.cpp) calls on a CPU context.
#pragma once
#include "kernels/moe_router.hpp"

namespace r1::kernels::cpu {

void moe_router_forward(const Tensor& logits, const Tensor& bias, const RouterParams& p, const Tensor& scores,
                        const Tensor& expert_idx, const Tensor& gates, bool replay);
void moe_router_backward(const Tensor& dgates, const Tensor& scores, const Tensor& expert_idx, const Tensor& gates,
                         const RouterParams& p, const Tensor& dlogits);

}  // namespace r1::kernels::cpu
