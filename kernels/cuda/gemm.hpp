// CUDA version of kernels/gemm.hpp for its dispatch, defined in cuda/gemm.cpp (CUDA builds only).
#pragma once
#include <span>

#include "kernels/gemm.hpp"

namespace r1::kernels::cuda {

void gemm(const Context& ctx, const GemmProblem& p, const Tensor& a, const Tensor& b, const Tensor& c,
          const GemmOptions& opt);
// Every non-empty group of a row-grouped A and C against per-expert B [E, ...] in one cuBLAS grouped
// launch (see grouped_gemm.hpp); A, B and C share a dtype.
void grouped_gemm_one_launch(const Context& ctx, const Tensor& a, const Tensor& b, const Tensor& c,
                             std::span<const std::int64_t> offsets, const GemmOptions& opt);

}  // namespace r1::kernels::cuda
