// CUDA version of kernels/random.hpp for its dispatch, defined in cuda/random.cu (CUDA builds only).
#pragma once
#include "kernels/random.hpp"

namespace r1::kernels::cuda {

void fill_random(const Context& ctx, const Tensor& x, Distribution d, float a, float b, RngKey key, std::uint64_t offset);

}  // namespace r1::kernels::cuda
