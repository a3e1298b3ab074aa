// CPU reference of kernels/gqa_decode.hpp: what its dispatch (kernels/gqa_decode.cpp) calls on a CPU context.
#pragma once
#include "kernels/gqa_decode.hpp"

namespace r1::kernels::cpu {

void gqa_decode_attention(const GqaDecodeShape& s, const Tensor& q, const Tensor& cache_k, const Tensor& cache_v,
                          const Tensor& lengths, float scale, const Tensor& out);

}  // namespace r1::kernels::cpu
