// CUDA version of kernels/copy_columns.hpp for its dispatch, defined in cuda/copy_columns.cu (CUDA builds only).
#pragma once
#include "kernels/copy_columns.hpp"

namespace r1::kernels::cuda {

void copy_columns(const Context& ctx, const Tensor& src, std::int64_t src_col, const Tensor& dst,
                  std::int64_t dst_col, std::int64_t width);

}  // namespace r1::kernels::cuda
