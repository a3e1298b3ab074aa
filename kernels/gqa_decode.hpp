// Decode-time grouped-query attention: one new query per sequence against that sequence's cached keys and
// values (Llama-3, Qwen2/2.5, Qwen3 generation; the cache rows are written with kernels::kv_cache_write).
#pragma once
#include "kernels/mla_decode.hpp"

namespace r1::kernels {

// For every sequence slot b and query head h, with group = H / K and kv = h / group:
//   s[j]      = scale * q[b,h,:] . cache_k[b,j,kv,:]        j < lengths[b]
//   out[b,h,:] = sum_j softmax_j(s) cache_v[b,j,kv,:]
// which is the training attention's last row (kernels/attention.hpp) for a sequence of lengths[b] tokens.
//   q, out: [B, H, d]; cache_k, cache_v: [B, L, K, d], K dividing H, or pools [N, bs, K, d] read through
//   `block_table` (i32 [B, L / bs]; CacheBlocks, kernels/mla_decode.hpp); lengths: i32 [B], 1 <= lengths[b]
//   <= L (checked on the CPU only). One float dtype (f32 or bf16) for all but lengths and the table; math
//   in f32; d <= 256.
// The CUDA kernel reads no host value that changes between decode steps, so a captured step replays as
// the lengths grow.
void gqa_decode_attention(const Context& ctx, const Tensor& q, const Tensor& cache_k, const Tensor& cache_v,
                          const Tensor& lengths, float scale, const Tensor& out, const Tensor& block_table = {});

// The sizes gqa_decode_attention reads from its arguments (validated by it).
struct GqaDecodeShape {
  std::int64_t batch = 0, heads = 0, kv_heads = 0, head_dim = 0, max_len = 0;
  CacheBlocks blocks;
};

}  // namespace r1::kernels
