// CPU reference of kernels/cross_entropy.hpp: what its dispatch (kernels/cross_entropy.cpp) calls on a CPU context.
#pragma once
#include "kernels/cross_entropy.hpp"

namespace r1::kernels::cpu {

void cross_entropy_forward(const Tensor& logits, const Tensor& targets, const Tensor& losses, const Tensor& lse);
void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse, const Tensor& dloss,
                            const Tensor& dlogits);

}  // namespace r1::kernels::cpu
