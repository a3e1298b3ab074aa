// CUDA version of kernels/swiglu.hpp for its dispatch, defined in cuda/swiglu.cu (CUDA builds only).
#pragma once
#include "kernels/swiglu.hpp"

namespace r1::kernels::cuda {

void swiglu_forward(const Context& ctx, const Tensor& gate_up, const Tensor& out);
void swiglu_forward_fp8(const Context& ctx, const Tensor& gate_up, const Tensor& out, const Fp8Tensor& q);
void swiglu_backward(const Context& ctx, const Tensor& dout, const Tensor& gate_up, const Tensor& dgate_up);

}  // namespace r1::kernels::cuda
