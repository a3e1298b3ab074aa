// CUDA version of kernels/fp8_gemm.hpp for its dispatch, defined in cuda/fp8_gemm.cu (CUDA builds only).
#pragma once
#include "kernels/fp8_gemm.hpp"

namespace r1::kernels::cuda {

void fp8_gemm(const Context& ctx, const Fp8Tensor& a, const Fp8Tensor& b, const Tensor& c, const Fp8GemmOptions& opt);

std::int64_t fp8_gemm_plain_calls();

}  // namespace r1::kernels::cuda
