// CUDA version of kernels/fp8_gemm.hpp for its dispatch, defined in cuda/fp8_gemm.cu (CUDA builds only).
#pragma once
#include "kernels/fp8_gemm.hpp"

namespace r1::kernels::cuda {

void fp8_gemm(const Context& ctx, const Fp8Tensor& a, const Fp8Tensor& b, const Tensor& c, const Fp8GemmOptions& opt);

// The experts `busy` (non-empty, K > 0, operands checked) of kernels::fp8_gemm_experts.
void fp8_gemm_experts(const Context& ctx, std::span<const Fp8Tensor> a, std::span<const Fp8Tensor> b,
                      std::span<const Tensor> c, std::span<const std::size_t> busy, const Fp8GemmOptions& opt);

std::int64_t fp8_gemm_plain_calls();

}  // namespace r1::kernels::cuda
