// CUDA version of kernels/gqa_decode.hpp for its dispatch, defined in cuda/gqa_decode.cu (CUDA builds only).
#pragma once
#include "kernels/gqa_decode.hpp"

namespace r1::kernels::cuda {

void gqa_decode_attention(const Context& ctx, const GqaDecodeShape& s, const Tensor& q, const Tensor& cache_k,
                          const Tensor& cache_v, const Tensor& lengths, float scale, const Tensor& out);

}  // namespace r1::kernels::cuda
