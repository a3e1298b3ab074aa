// CUDA version of kernels/moe_router.hpp for its dispatch, defined in cuda/moe_router.cu (CUDA builds only).
#pragma once
#include "kernels/moe_router.hpp"

namespace r1::kernels::cuda {

void moe_router_forward(const Context& ctx, const Tensor& logits, const Tensor& bias, const RouterParams& p,
                        const Tensor& scores, const Tensor& expert_idx, const Tensor& gates, bool replay);
void moe_router_backward(const Context& ctx, const Tensor& dgates, const Tensor& scores, const Tensor& expert_idx,
                         const Tensor& gates, const RouterParams& p, const Tensor& dlogits);

}  // namespace r1::kernels::cuda
