// CUDA version of kernels/adamw.hpp for its dispatch, defined in cuda/adamw.cu (CUDA builds only).
#pragma once
#include "kernels/adamw_math.hpp"

namespace r1::kernels::cuda {

void adamw_step(const Context& ctx, const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                const Tensor& exp_avg_sq, const detail::AdamWCoefficients& k, const Tensor& param_bf16);

}  // namespace r1::kernels::cuda
