#include "kernels/gqa_decode.hpp"

#include "kernels/attention.hpp"
#include "kernels/cpu/gqa_decode.hpp"
#include "kernels/cuda/gqa_decode.hpp"
#include "kernels/nn_checks.hpp"

namespace r1::kernels {

void gqa_decode_attention(const Context& ctx, const Tensor& q, const Tensor& cache_k, const Tensor& cache_v,
                          const Tensor& lengths, float scale, const Tensor& out, const Tensor& block_table) {
  const char* op = "gqa_decode_attention";
  require_all_here(ctx, op,
                   {{"q", &q}, {"cache_k", &cache_k}, {"cache_v", &cache_v}, {"lengths", &lengths}, {"out", &out}});
  R1_REQUIRE(q.rank() == 3 && cache_k.rank() == 4, op, ": q ", q.str(), " must be [B, H, d] and cache_k ",
             cache_k.str(), " [B, L, K, d]");
  GqaDecodeShape s;
  s.batch = q.dim(0);
  s.heads = q.dim(1);
  s.head_dim = q.dim(2);
  s.kv_heads = cache_k.dim(2);
  s.blocks = cache_blocks(ctx, op, cache_k, block_table, s.batch);
  s.max_len = s.blocks.blocks_per_slot * s.blocks.block_size;
  const DType dt = q.dtype();
  for (const Tensor* t : {&cache_k, &cache_v, &out})
    R1_REQUIRE(is_float(dt) && t->dtype() == dt, op, ": q ", q.str(), " and ", t->str(),
               " must share one dtype, f32 or bf16");
  R1_REQUIRE(out.shape() == q.shape() && cache_k.dim(3) == s.head_dim &&
                 cache_v.shape() == cache_k.shape(),
             op, ": q ", q.str(), " [B, H, d], cache_k ", cache_k.str(), " and cache_v ", cache_v.str(),
             " [B, L, K, d] and out ", out.str(), " [B, H, d] disagree");
  R1_REQUIRE(s.kv_heads >= 1 && s.heads % s.kv_heads == 0 && s.head_dim >= 1 && s.head_dim <= kAttentionMaxHeadDim &&
                 s.max_len >= 1 && scale > 0.0f,
             op, ": ", s.kv_heads, " K/V heads must divide the ", s.heads, " query heads, head_dim ", s.head_dim,
             " lie in [1, ", kAttentionMaxHeadDim, "], the cache hold a token and scale ", scale, " be positive");
  require_vector(op, "lengths", lengths, DType::i32, s.batch, "q", q);
  require_i32_range(op, "lengths", lengths, 1, s.max_len);
  if (out.numel() == 0) return;
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::gqa_decode_attention(ctx, s, q, cache_k, cache_v, lengths, scale, out);
#endif
  cpu::gqa_decode_attention(s, q, cache_k, cache_v, lengths, scale, out);
}

}  // namespace r1::kernels
