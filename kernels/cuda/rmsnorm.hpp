// CUDA version of kernels/rmsnorm.hpp for its dispatch, defined in cuda/rmsnorm.cu (CUDA builds only).
#pragma once
#include "kernels/rmsnorm.hpp"

namespace r1::kernels::cuda {

void rmsnorm_forward(const Context& ctx, const Tensor& x, const Tensor& weight, float eps, const Tensor& y,
                     const Tensor& rstd);
void rmsnorm_backward(const Context& ctx, const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& rstd,
                      const Tensor& dx, const Tensor& dweight);

}  // namespace r1::kernels::cuda
