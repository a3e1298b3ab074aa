// CUDA version of kernels/mla_decode.hpp for its dispatch, defined in cuda/mla_decode.cu (CUDA builds only).
#pragma once
#include "kernels/mla_decode.hpp"

namespace r1::kernels::cuda {

void kv_cache_write(const Context& ctx, const Tensor& src, const Tensor& start, const Tensor& cache,
                    const CacheBlocks& blocks);
void mla_decode_attention(const Context& ctx, const MlaDecodeShape& s, const Tensor& q, const Tensor& kv_b,
                          const Tensor& cache_kv, const Tensor& cache_pe, const Tensor& lengths, float scale,
                          const Tensor& out);

}  // namespace r1::kernels::cuda
