// CUDA version of kernels/adamw.hpp for its dispatch, defined in cuda/adamw.cu (CUDA builds only).
#pragma once
#include <vector>

#include "kernels/adamw_math.hpp"

namespace r1::kernels::cuda {

// rows: every tensor of the step (host table, uploaded here); moments: their moment dtype (f32 or bf16).
void adamw_multi_step(const Context& ctx, const std::vector<detail::AdamWRow>& rows, DType moments,
                      const detail::AdamWCoefficients& k);

}  // namespace r1::kernels::cuda
