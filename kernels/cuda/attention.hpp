// CUDA version of kernels/attention.hpp for its dispatch, defined in cuda/attention.cu (CUDA builds only).
#pragma once
#include "kernels/attention.hpp"

namespace r1::kernels::cuda {

void attention_forward(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, float scale,
                       const Tensor& segment_ids, const Tensor& out, const Tensor& lse);
void attention_backward(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                        const Tensor& dout, const Tensor& lse, const Tensor& segment_ids, float scale,
                        const Tensor& dq, const Tensor& dk, const Tensor& dv);

}  // namespace r1::kernels::cuda
