// CPU reference of kernels/copy_columns.hpp: what its dispatch (kernels/copy_columns.cpp) calls on a CPU context.
#pragma once
#include "kernels/copy_columns.hpp"

namespace r1::kernels::cpu {

void copy_columns(const Tensor& src, std::int64_t src_col, const Tensor& dst, std::int64_t dst_col, std::int64_t width);

}  // namespace r1::kernels::cpu
