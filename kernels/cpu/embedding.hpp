// CPU reference of kernels/embedding.hpp: what its dispatch (kernels/embedding.cpp) calls on a CPU context.
#pragma once
#include "kernels/embedding.hpp"

namespace r1::kernels::cpu {

void embedding_forward(const Tensor& table, const Tensor& ids, const Tensor& out);
void embedding_backward(const Tensor& dout, const Tensor& ids, const Tensor& dtable);

}  // namespace r1::kernels::cpu
