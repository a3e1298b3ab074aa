// CPU reference of kernels/adamw.hpp: what its dispatch (kernels/adamw.cpp) calls on a CPU context.
#pragma once
#include "kernels/adamw_math.hpp"

namespace r1::kernels::cpu {

void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                const detail::AdamWCoefficients& k, const Tensor& param_bf16);

}  // namespace r1::kernels::cpu
