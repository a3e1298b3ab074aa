// CPU reference of kernels/adamw.hpp: what its dispatch (kernels/adamw.cpp) calls on a CPU context.
#pragma once
#include <vector>

#include "kernels/adamw_math.hpp"

namespace r1::kernels::cpu {

// rows: every tensor of the step; moments: their moment dtype (f32 or bf16).
void adamw_multi_step(const std::vector<detail::AdamWRow>& rows, DType moments, const detail::AdamWCoefficients& k);

}  // namespace r1::kernels::cpu
