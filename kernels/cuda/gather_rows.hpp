// CUDA version of kernels/gather_rows.hpp for its dispatch, defined in cuda/gather_rows.cu (CUDA builds only).
#pragma once
#include "kernels/gather_rows.hpp"

namespace r1::kernels::cuda {

void gather_rows(const Context& ctx, const Tensor& src, const Tensor& rows, const Tensor& dst);

}  // namespace r1::kernels::cuda
