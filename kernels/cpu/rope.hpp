// CPU reference of kernels/rope.hpp: what its dispatch (kernels/rope.cpp) calls on a CPU context.
#pragma once
#include "kernels/rope.hpp"

namespace r1::kernels::cpu {

void rope_apply(const Tensor& x, const Tensor& positions, const RopeTables& tables, std::int64_t offset, bool inverse);

}  // namespace r1::kernels::cpu
