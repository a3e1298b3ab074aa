#include "kernels/mla_decode.hpp"

#include <algorithm>

#include "kernels/attention.hpp"
#include "kernels/cpu/mla_decode.hpp"
#include "kernels/cuda/mla_decode.hpp"
#include "kernels/nn_checks.hpp"

namespace r1::kernels {

MlaDecodeSplit mla_decode_split(std::int64_t batch_heads, std::int64_t max_len, int sm_count) {
  const std::int64_t target = kMlaDecodeBlocksPerSm * std::max(sm_count, 1);
  const std::int64_t bh = std::max<std::int64_t>(batch_heads, 1);
  const std::int64_t want = bh >= target ? 1 : (target + bh - 1) / bh;
  const std::int64_t q = kMlaDecodeChunkQuantum;
  const std::int64_t chunk = ((max_len + want - 1) / want + q - 1) / q * q;
  return {chunk, (max_len + chunk - 1) / chunk};
}

CacheBlocks cache_blocks(const Context& ctx, const char* op, const Tensor& cache, const Tensor& block_table,
                         std::int64_t slots) {
  R1_REQUIRE(cache.rank() >= 3, op, ": cache ", cache.str(), " must be [B, L, ...] or a block pool [N, bs, ...]");
  CacheBlocks blocks;
  blocks.block_size = cache.dim(1);
  if (!block_table.defined()) {
    R1_REQUIRE(cache.dim(0) == slots, op, ": cache ", cache.str(), " must hold ", slots, " slots (no block table)");
    return blocks;
  }
  require_here(ctx, op, "block_table", block_table);
  R1_REQUIRE(block_table.dtype() == DType::i32 && block_table.rank() == 2 && block_table.dim(0) == slots &&
                 block_table.dim(1) >= 1,
             op, ": block_table ", block_table.str(), " must be i32 [", slots, ", blocks per slot]");
  require_i32_range(op, "block_table", block_table, 0, cache.dim(0) - 1);
  blocks.table = block_table.data<std::int32_t>();
  blocks.blocks_per_slot = block_table.dim(1);
  return blocks;
}

void kv_cache_write(const Context& ctx, const Tensor& src, const Tensor& start, const Tensor& cache,
                    const Tensor& block_table) {
  const char* op = "kv_cache_write";
  require_all_here(ctx, op, {{"src", &src}, {"start", &start}, {"cache", &cache}});
  R1_REQUIRE(src.rank() == 3 && cache.rank() == 3 && is_float(src.dtype()) && src.dtype() == cache.dtype() &&
                 src.dim(2) == cache.dim(2),
             op, ": src ", src.str(), " must be [B, S, W] and cache ", cache.str(),
             " [B, L, W] (or a pool [N, bs, W]), both of one dtype (f32 or bf16)");
  const CacheBlocks blocks = cache_blocks(ctx, op, cache, block_table, src.dim(0));
  const std::int64_t L = blocks.blocks_per_slot * blocks.block_size;
  R1_REQUIRE(src.dim(1) <= L, op, ": src ", src.str(), " has more rows than the cache's ", L, " per slot");
  require_vector(op, "start", start, DType::i32, src.dim(0), "src", src);
  require_i32_range(op, "start", start, 0, L - src.dim(1));
  if (src.numel() == 0) return;
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::kv_cache_write(ctx, src, start, cache, blocks);
#endif
  cpu::kv_cache_write(src, start, cache, blocks);
}

void mla_decode_attention(const Context& ctx, const Tensor& q, const Tensor& kv_b, const Tensor& cache_kv,
                          const Tensor& cache_pe, const Tensor& lengths, float scale, const Tensor& out,
                          const Tensor& block_table) {
  const char* op = "mla_decode_attention";
  require_all_here(ctx, op,
                   {{"q", &q}, {"kv_b", &kv_b}, {"cache_kv", &cache_kv}, {"cache_pe", &cache_pe},
                    {"lengths", &lengths}, {"out", &out}});
  R1_REQUIRE(q.rank() == 3 && out.rank() == 3 && kv_b.rank() == 2 && cache_kv.rank() == 3 && cache_pe.rank() == 3,
             op, ": q ", q.str(), ", out ", out.str(), ", cache_kv ", cache_kv.str(), " and cache_pe ", cache_pe.str(),
             " must be rank 3 and kv_b ", kv_b.str(), " rank 2");
  MlaDecodeShape s;
  s.batch = q.dim(0);
  s.heads = q.dim(1);
  s.d_rope = cache_pe.dim(2);
  s.d_nope = q.dim(2) - s.d_rope;
  s.d_v = out.dim(2);
  s.rank = cache_kv.dim(2);
  s.blocks = cache_blocks(ctx, op, cache_kv, block_table, s.batch);
  s.max_len = s.blocks.blocks_per_slot * s.blocks.block_size;
  const DType dt = q.dtype();
  for (const Tensor* t : {&kv_b, &cache_kv, &cache_pe, &out})
    R1_REQUIRE(is_float(dt) && t->dtype() == dt, op, ": q ", q.str(), " and ", t->str(),
               " must share one dtype, f32 or bf16");
  R1_REQUIRE(s.d_nope > 0 && out.dim(0) == s.batch && out.dim(1) == s.heads && cache_pe.dim(0) == cache_kv.dim(0) &&
                 cache_pe.dim(1) == cache_kv.dim(1) &&
                 kv_b.shape() == Shape({s.heads * (s.d_nope + s.d_v), s.rank}),
             op, ": q ", q.str(), " [B, H, dn + dr], kv_b ", kv_b.str(), " [H (dn + dv), R], cache_kv ", cache_kv.str(),
             " [B, L, R], cache_pe ", cache_pe.str(), " [B, L, dr] and out ", out.str(), " [B, H, dv] disagree");
  R1_REQUIRE(s.rank >= 1 && s.rank <= kMlaDecodeMaxRank && s.d_rope >= 1 && s.d_rope <= kAttentionMaxHeadDim &&
                 s.max_len >= 1 && scale > 0.0f,
             op, ": latent rank ", s.rank, " must be in [1, ", kMlaDecodeMaxRank, "], the rope dim ", s.d_rope,
             " in [1, ", kAttentionMaxHeadDim, "], the cache must hold a token and scale ", scale, " be positive");
  require_vector(op, "lengths", lengths, DType::i32, s.batch, "q", q);
  require_i32_range(op, "lengths", lengths, 1, s.max_len);
  if (out.numel() == 0) return;
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::mla_decode_attention(ctx, s, q, kv_b, cache_kv, cache_pe, lengths, scale, out);
#endif
  cpu::mla_decode_attention(s, q, kv_b, cache_kv, cache_pe, lengths, scale, out);
}

}  // namespace r1::kernels
