// CUDA version of kernels/rope.hpp for its dispatch, defined in cuda/rope.cu (CUDA builds only).
#pragma once
#include "kernels/rope.hpp"

namespace r1::kernels::cuda {

void rope_apply(const Context& ctx, const Tensor& x, const Tensor& positions, const RopeTables& tables,
                std::int64_t offset, bool inverse);

}  // namespace r1::kernels::cuda
