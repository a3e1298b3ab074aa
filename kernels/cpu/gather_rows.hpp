// CPU reference of kernels/gather_rows.hpp: what its dispatch (kernels/gather_rows.cpp) calls on a CPU context.
#pragma once
#include "kernels/gather_rows.hpp"

namespace r1::kernels::cpu {

void gather_rows(const Tensor& src, const Tensor& rows, const Tensor& dst);

}  // namespace r1::kernels::cpu
