// CPU reference of kernels/mla_decode.hpp: what its dispatch (kernels/mla_decode.cpp) calls on a CPU context.
#pragma once
#include "kernels/mla_decode.hpp"

namespace r1::kernels::cpu {

void kv_cache_write(const Tensor& src, const Tensor& start, const Tensor& cache, const CacheBlocks& blocks);
void mla_decode_attention(const MlaDecodeShape& s, const Tensor& q, const Tensor& kv_b, const Tensor& cache_kv,
                          const Tensor& cache_pe, const Tensor& lengths, float scale, const Tensor& out);

}  // namespace r1::kernels::cpu
