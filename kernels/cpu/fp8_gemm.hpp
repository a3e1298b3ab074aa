// CPU reference of kernels/fp8_gemm.hpp: what its dispatch (kernels/fp8_gemm.cpp) calls on a CPU context.
#pragma once
#include "kernels/fp8_gemm.hpp"

namespace r1::kernels::cpu {

void fp8_gemm(const Fp8Tensor& a, const Fp8Tensor& b, const Tensor& c, const Fp8GemmOptions& opt);

}  // namespace r1::kernels::cpu
