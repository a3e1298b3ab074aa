// CUDA version of kernels/embedding.hpp for its dispatch, defined in cuda/embedding.cu (CUDA builds only).
#pragma once
#include "kernels/embedding.hpp"

namespace r1::kernels::cuda {

void embedding_forward(const Context& ctx, const Tensor& table, const Tensor& ids, const Tensor& out);
void embedding_backward(const Context& ctx, const Tensor& dout, const Tensor& ids, const Tensor& dtable);

}  // namespace r1::kernels::cuda
