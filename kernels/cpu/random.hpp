// CPU reference of kernels/random.hpp: what its dispatch (kernels/random.cpp) calls on a CPU context.
#pragma once
#include "kernels/random.hpp"

namespace r1::kernels::cpu {

void fill_random(const Tensor& x, Distribution d, float a, float b, RngKey key, std::uint64_t offset);

}  // namespace r1::kernels::cpu
