// CPU reference of kernels/swiglu.hpp: what its dispatch (kernels/swiglu.cpp) calls on a CPU context.
#pragma once
#include "kernels/swiglu.hpp"

namespace r1::kernels::cpu {

void swiglu_forward(const Tensor& gate_up, const Tensor& out);
void swiglu_backward(const Tensor& dout, const Tensor& gate_up, const Tensor& dgate_up);

}  // namespace r1::kernels::cpu
