// CUDA version of kernels/moe_decode.hpp for its dispatch, defined in cuda/moe_decode.cu (CUDA builds only).
#pragma once
#include "kernels/moe_decode.hpp"

namespace r1::kernels::cuda {

void moe_decode_experts(const Context& ctx, const Tensor& x, const Tensor& expert_idx, const Tensor& gates,
                        const Tensor& gate_up, const Tensor& down, const Tensor& h, const Tensor& out);

}  // namespace r1::kernels::cuda
