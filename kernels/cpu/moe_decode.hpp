// CPU reference of kernels/moe_decode.hpp: what its dispatch (kernels/moe_decode.cpp) calls on a CPU context.
#pragma once
#include "kernels/moe_decode.hpp"

namespace r1::kernels::cpu {

void moe_decode_experts(const Tensor& x, const Tensor& expert_idx, const Tensor& gates, const Tensor& gate_up,
                        const Tensor& down, const Tensor& h, const Tensor& out);

}  // namespace r1::kernels::cpu
