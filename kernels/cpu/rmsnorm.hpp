// CPU reference of kernels/rmsnorm.hpp: what its dispatch (kernels/rmsnorm.cpp) calls on a CPU context.
#pragma once
#include "kernels/rmsnorm.hpp"

namespace r1::kernels::cpu {

void rmsnorm_forward(const Tensor& x, const Tensor& weight, float eps, const Tensor& y, const Tensor& rstd);
void rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& rstd, const Tensor& dx,
                      const Tensor& dweight);

}  // namespace r1::kernels::cpu
