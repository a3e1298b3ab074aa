// CUDA version of kernels/cross_entropy.hpp for its dispatch, defined in cuda/cross_entropy.cu (CUDA builds only).
#pragma once
#include "kernels/cross_entropy.hpp"

namespace r1::kernels::cuda {

void cross_entropy_forward(const Context& ctx, const Tensor& logits, const Tensor& targets, const Tensor& losses,
                           const Tensor& lse);
void cross_entropy_backward(const Context& ctx, const Tensor& logits, const Tensor& targets, const Tensor& lse,
                            const Tensor& dloss, const Tensor& dlogits);

}  // namespace r1::kernels::cuda
