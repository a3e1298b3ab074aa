// CPU reference of kernels/gemm.hpp: what its dispatch (kernels/gemm.cpp) calls on a CPU context.
#pragma once
#include "kernels/gemm.hpp"

namespace r1::kernels::cpu {

void gemm(const Context& ctx, const GemmProblem& p, const Tensor& a, const Tensor& b, const Tensor& c,
          const GemmOptions& opt);

}  // namespace r1::kernels::cpu
