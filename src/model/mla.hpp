// Multi-head latent attention (DeepSeek-V3 MLA) in its training form, without weight absorption:
// low-rank query and key/value latents with RMSNorm, decoupled RoPE on a rope slice of every head with
// one rope key shared by all heads, fused causal attention, output projection.
#pragma once
#include <string>

#include "kernels/context.hpp"
#include "kernels/rope.hpp"
#include "model/batch.hpp"
#include "model/config.hpp"
#include "model/params.hpp"
#include "model/tensor_parallel.hpp"

namespace r1 {

// The RoPE tables MLA layers share: rope_dim = qk_rope_head_dim, positions up to max_seq_len, YaRN from
// the config (active when rope_factor > 1 and max_seq_len > original_seq_len, as in DeepSeek-V3).
kernels::RopeTables mla_rope_tables(const kernels::Context& ctx, const ModelConfig& c);

// Shapes (T tokens, H heads, d_qk = d_nope + d_rope): x, out [T, D] in the compute dtype.
//   q     = x q_proj^T, or q_b_proj(q_a_norm(x q_a_proj^T))          [T, H, d_qk], per head [q_nope | q_pe]
//   kv_a  = x kv_a_proj^T = [c_kv (R_kv) | k_pe (d_rope)]
//   kv    = kv_a_norm(c_kv) kv_b_proj^T                               [T, H, d_nope + d_v], per head [k_nope | v]
//   k     = [k_nope | rope(k_pe), the same for every head]            [T, H, d_qk]
//   o     = attention(rope(q), k, v), scale (d_qk)^-0.5 * attention_mscale^2, causal, within segments
//   out   = o o_proj^T
class MlaAttention {
 public:
  // Registers prefix.{q_proj | q_a_proj, q_a_norm, q_b_proj}, kv_a_proj, kv_a_norm, kv_b_proj, o_proj
  // (docs/model.md). The layer keeps a handle to `rope`'s tables (shared, not copied).
  // Tensor parallelism splits the heads: each rank holds n_heads / tp heads' rows of q_proj (q_b_proj)
  // and kv_b_proj and their columns of o_proj; the latent projections and norms are whole on every rank
  // and get a partial gradient (TpRole::partial). forward's out and backward's dx are then partial sums
  // over `tp` (the caller reduces).
  MlaAttention(const ModelConfig& c, ParamStore& params, const std::string& prefix, const kernels::RopeTables& rope,
               TpGroup tp = {});

  // What backward needs; every tensor in the compute dtype unless noted. `x` is the caller's input,
  // held (not copied): it must stay unchanged until backward.
  struct Saved {
    Tensor x;         // [T, D] the layer input
    Tensor q_a;       // [T, R_q] q latent before q_a_norm (q_lora_rank > 0 only)
    Tensor q_a_n;     // [T, R_q] after q_a_norm: q_b_proj's input (q_lora_rank > 0 only)
    Tensor q_a_rstd;  // f32 [T] q_a_norm's 1/rms (q_lora_rank > 0 only)
    Tensor c_kv;      // [T, R_kv] kv latent before kv_a_norm
    Tensor c_kv_n;    // [T, R_kv] after kv_a_norm: kv_b_proj's input
    Tensor kv_rstd;   // f32 [T] kv_a_norm's 1/rms
    Tensor q;         // [T, H, d_qk] rotated queries
    Tensor k;         // [T, H, d_qk] keys, rotated shared rope key in every head
    Tensor v;         // [T, H, d_v]
    Tensor o;         // [T, H d_v] attention output: o_proj's input
    Tensor lse;       // f32 [B, H, S] log-sum-exp of the scaled scores
  };

  Saved forward(const kernels::Context& ctx, const BatchShape& b, const Tensor& x, const Tensor& out) const;
  // dx [T, D] is overwritten; parameter gradients are accumulated. The gradient of the shared rope key
  // is the sum over heads.
  void backward(const kernels::Context& ctx, const BatchShape& b, const Saved& s, const Tensor& dout,
                const Tensor& dx) const;

  float softmax_scale() const { return scale_; }

  // Generation (no backward): the per-layer KV cache of B sequence slots of up to L tokens holds what MLA
  // needs of every past token, the normalised latent and the rotated shared rope key, (R_kv + d_rope)
  // values per token instead of H (d_qk + d_v). Contiguous (no table: kv, pe per slot) or paged (kv, pe
  // pools of fixed-size blocks that the slots' block table points into; kernels::CacheBlocks).
  struct Cache {
    Tensor kv;     // [B, L, R_kv] kv_a_norm(c_kv), or a pool [N, bs, R_kv]
    Tensor pe;     // [B, L, d_rope] rope(k_pe), or a pool [N, bs, d_rope]
    Tensor table;  // paged: i32 [B, L / bs] in the model's memory (shared by every layer); else undefined
    std::int64_t slots() const { return table.defined() ? table.dim(0) : kv.dim(0); }
  };
  Cache make_cache(const kernels::Context& ctx, std::int64_t batch, std::int64_t max_len) const;
  // The training forward over a right-padded prompt batch (B x S tokens, S <= L; causal masking keeps the
  // padding out of every real token's output), then each slot's S latents and rope keys written to cache
  // rows [0, S). Rows past a prompt's end hold padding until decode overwrites them.
  void prefill(const kernels::Context& ctx, const BatchShape& b, const Tensor& x, const Tensor& out,
               const Cache& cache) const;
  // One new token per slot: x, out [B, D]; positions i32 [B] (each token's RoPE position and cache row);
  // lengths i32 [B] = positions + 1, the cached tokens each query attends to. Attention runs in latent
  // space with W_UK and W_UV absorbed (kernels/mla_decode.hpp), never expanding the cache to per-head keys.
  void decode(const kernels::Context& ctx, const Tensor& x, const Tensor& positions, const Tensor& lengths,
              const Cache& cache, const Tensor& out) const;

 private:
  // The projections shared by forward and decode: rotated queries into s.q (and the q latent into s.q_a*),
  // the latent into s.c_kv, s.c_kv_n, s.kv_rstd; returns the rotated rope key [T, d_rope].
  Tensor project(const kernels::Context& ctx, const Tensor& positions, const Tensor& x, Saved& s) const;

  std::int64_t dim_, heads_, d_nope_, d_rope_, d_v_, q_rank_, kv_rank_;
  float eps_, scale_;
  kernels::RopeTables rope_;
  Param* q_proj_ = nullptr;  // q_lora_rank = 0
  Param* q_a_proj_ = nullptr;
  Param* q_a_norm_ = nullptr;
  Param* q_b_proj_ = nullptr;
  Param* kv_a_proj_;
  Param* kv_a_norm_;
  Param* kv_b_proj_;
  Param* o_proj_;
};

}  // namespace r1
