// Decode-time MLA over a latent KV cache: writing new rows into the per-slot cache, and attention of one
// new query per sequence with the key and value up-projections absorbed (DeepSeek-V3's "absorb" mode).
#pragma once
#include "kernels/context.hpp"

namespace r1::kernels {

// A decode cache's layout as the kernels read it: slot b's token j is pool row
// (table ? table[b blocks_per_slot + j / block_size] : b) block_size + j % block_size. Contiguous: no
// table, one block of block_size = L per slot.
struct CacheBlocks {
  const std::int32_t* table = nullptr;
  std::int64_t blocks_per_slot = 1, block_size = 0;
  constexpr std::int64_t row(std::int64_t b, std::int64_t j) const {
    return (table != nullptr ? table[b * blocks_per_slot + j / block_size] : b) * block_size + j % block_size;
  }
};
// The layout of `cache` ([B, L, W] or a pool [N, bs, W]) with `block_table` (undefined: contiguous), checked
// against B slots (kv_cache_write's comment): the table's shape, and on the CPU its entries.
CacheBlocks cache_blocks(const Context& ctx, const char* op, const Tensor& cache, const Tensor& block_table,
                         std::int64_t slots);

// Where a decode cache keeps slot b's token j. Contiguous (no block table): cache [B, L, W], the row
// (b, j). Paged (a block table, i32 [B, blocks per slot]): cache is a pool of fixed-size blocks [N, bs, W]
// shared by the slots, and the token is row (table[b, j / bs], j % bs) of the pool; L = blocks per slot x bs.
// The decode kernels and kv_cache_write take the table as their last argument (undefined: contiguous).
// Entries a slot's lengths never reach are not read, but must still lie in [0, N) (checked on the CPU).

// cache row of (b, start[b] + s) = src[b, s, :] for every sequence slot b and 0 <= s < S.
//   src: [B, S, W]; cache: [B, L, W] or a pool [N, bs, W] with `block_table` [B, L / bs] (above), src's dtype
//   (f32 or bf16); start: i32 [B], 0 <= start[b] <= L - S (checked on the CPU; on the GPU the caller
//   validates it: out-of-range rows are undefined).
void kv_cache_write(const Context& ctx, const Tensor& src, const Tensor& start, const Tensor& cache,
                    const Tensor& block_table = {});

// One query per sequence slot against that slot's first lengths[b] cached tokens, in latent space:
//   q_lat[b,h,:]  = q[b,h,:dn] W_UK_h                           W_UK_h = kv_b rows [h(dn+dv), h(dn+dv)+dn)  [dn, R]
//   s[b,h,j]      = scale * (q_lat[b,h,:] . cache_kv[b,j,:] + q[b,h,dn:] . cache_pe[b,j,:])    j < lengths[b]
//   o_lat[b,h,:]  = sum_j softmax_j(s[b,h,:]) cache_kv[b,j,:]
//   out[b,h,:]    = W_UV_h o_lat[b,h,:]                         W_UV_h = the next dv rows of kv_b        [dv, R]
// which equals MLA's training attention (k_nope = c W_UK^T, v = c W_UV^T per head) by associativity, without
// ever forming per-head keys or values of the past tokens.
//   q: [B, H, dn + dr] (rope slice already rotated); kv_b: [H (dn + dv), R] (kv_b_proj as stored);
//   cache_kv: [B, L, R]; cache_pe: [B, L, dr] (or pools [N, bs, R], [N, bs, dr] read through `block_table`,
//   kv_cache_write's comment); lengths: i32 [B], 1 <= lengths[b] <= L (checked on the CPU only); out:
//   [B, H, dv]. One float dtype (f32 or bf16) for all but lengths and the table; math in f32. R <= 4096,
//   dr <= 256.
void mla_decode_attention(const Context& ctx, const Tensor& q, const Tensor& kv_b, const Tensor& cache_kv,
                          const Tensor& cache_pe, const Tensor& lengths, float scale, const Tensor& out,
                          const Tensor& block_table = {});

// The sizes mla_decode_attention reads from its arguments (validated by it).
struct MlaDecodeShape {
  std::int64_t batch = 0, heads = 0, d_nope = 0, d_rope = 0, d_v = 0, rank = 0, max_len = 0;
  CacheBlocks blocks;
};
constexpr std::int64_t kMlaDecodeMaxRank = 4096;

// How the CUDA kernel splits each (sequence, head) over the cache length (flash-decoding): block s of a
// (sequence, head) takes cached tokens [s chunk, (s + 1) chunk), and the partial results are combined in
// split order. Chosen from the cache capacity, B H and the SM count only, never from the lengths, so a decode
// step captured in a CUDA graph replays correctly as the lengths grow: enough splits that B H splits reaches
// kMlaDecodeBlocksPerSm blocks per SM, chunk a multiple of kMlaDecodeChunkQuantum tokens, and one split when
// B H alone fills the GPU. Always chunk * splits >= max_len > (splits - 1) chunk.
struct MlaDecodeSplit {
  std::int64_t chunk = 0, splits = 0;
};
constexpr std::int64_t kMlaDecodeChunkQuantum = 64;
constexpr std::int64_t kMlaDecodeBlocksPerSm = 2;
MlaDecodeSplit mla_decode_split(std::int64_t batch_heads, std::int64_t max_len, int sm_count);

}  // namespace r1::kernels
