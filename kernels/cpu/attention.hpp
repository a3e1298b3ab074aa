// CPU reference of kernels/attention.hpp: what its dispatch (kernels/attention.cpp) calls on a CPU context.
#pragma once
#include "kernels/attention.hpp"

namespace r1::kernels::cpu {

void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, float scale, const Tensor& segment_ids,
                       const Tensor& out, const Tensor& lse);
void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& dout,
                        const Tensor& lse, const Tensor& segment_ids, float scale, const Tensor& dq, const Tensor& dk,
                        const Tensor& dv);

}  // namespace r1::kernels::cpu
