// Grouped-query attention (Llama-3, Qwen2/2.5, Qwen3) in its training form: q/k/v projections with
// n_kv_heads K/V heads shared by groups of n_heads / n_kv_heads query heads, optional q/k/v biases (qwen2),
// per-head q/k RMSNorm before RoPE (qwen3), RoPE on the whole head, fused causal attention, output projection.
#pragma once
#include <string>

#include "kernels/context.hpp"
#include "kernels/rope.hpp"
#include "model/batch.hpp"
#include "model/config.hpp"
#include "model/params.hpp"
#include "model/tensor_parallel.hpp"

namespace r1 {

// The RoPE tables GQA layers share: rope_dim = head_dim, positions up to max_seq_len, llama3 scaling when
// [model] rope_type = llama3 (never YaRN).
kernels::RopeTables gqa_rope_tables(const kernels::Context& ctx, const ModelConfig& c);

// Shapes (T tokens, H query heads, K K/V heads, d = head_dim): x, out [T, D] in the compute dtype.
//   q   = x q_proj^T (+ q_bias)                  [T, H, d]    then q_norm per head (qwen3), then RoPE
//   k   = x k_proj^T (+ k_bias)                  [T, K, d]    then k_norm per head (qwen3), then RoPE
//   v   = x v_proj^T (+ v_bias)                  [T, K, d]
//   o   = attention(q, k, v), query head h reading K/V head h / (H / K), scale d^-0.5, causal, within segments
//   out = o o_proj^T
// RoPE rotates interleaved pairs (2i, 2i+1) of each head (kernels/rope.hpp); Hugging Face Llama/Qwen rotate
// half-split pairs (i, i + d/2), so their q/k rows (and q/k biases and norms) map to these by permuting each
// head's features: ours[2i] = theirs[i], ours[2i+1] = theirs[i + d/2] (q.k is unchanged).
class GqaAttention {
 public:
  // Registers prefix.q_proj [H d, D], k_proj and v_proj [K d, D], o_proj [D, H d]; qwen2 adds q_bias [H d],
  // k_bias and v_bias [K d]; qwen3 adds q_norm and k_norm [d] (docs/model.md). The layer keeps a handle to
  // `rope`'s tables. Tensor parallelism splits the heads: each rank holds H / tp query heads of q_proj and
  // q_bias and their columns of o_proj, and K / tp K/V heads of k/v_proj and k/v_bias when tp divides K. When K
  // divides tp, the tp / K ranks whose query heads share a K/V head each compute that head: k/v_proj and
  // k/v_bias are whole on every rank, each rank reads and adds the gradient of its head's rows only
  // (TpRole::partial, summed over TP). The q/k norms are whole with a partial gradient. forward's out and
  // backward's dx are partial sums over `tp` (the caller reduces).
  GqaAttention(const ModelConfig& c, ParamStore& params, const std::string& prefix, const kernels::RopeTables& rope,
               TpGroup tp = {});

  // What backward needs, in the compute dtype unless noted. `x` is the caller's input, held (not copied).
  struct Saved {
    Tensor x;       // [T, D] the layer input
    Tensor q_pre;   // [T, H, d] q before q_norm (qwen3 only)
    Tensor k_pre;   // [T, K, d] k before k_norm (qwen3 only)
    Tensor q_rstd;  // f32 [T H] q_norm's 1/rms (qwen3 only)
    Tensor k_rstd;  // f32 [T K] k_norm's 1/rms (qwen3 only)
    Tensor q;       // [T, H, d] rotated queries
    Tensor k;       // [T, K, d] rotated keys
    Tensor v;       // [T, K, d]
    Tensor o;       // [T, H d] attention output: o_proj's input
    Tensor lse;     // f32 [B, H, S] log-sum-exp of the scaled scores
  };

  Saved forward(const kernels::Context& ctx, const BatchShape& b, const Tensor& x, const Tensor& out) const;
  // dx [T, D] is overwritten; parameter gradients are accumulated.
  void backward(const kernels::Context& ctx, const BatchShape& b, const Saved& s, const Tensor& dout,
                const Tensor& dx) const;

  float softmax_scale() const { return scale_; }

  // Generation (no backward; model/gqa_inference.cpp): the per-layer KV cache of B sequence slots of up to L
  // tokens holds the rotated keys and the values of this rank's K/V heads (its own head when K/V heads are
  // replicated over TP), K' = their count.
  // Contiguous or paged as MlaAttention::Cache.
  struct Cache {
    Tensor k;      // [B, L, K' d] rope(k_norm(x k_proj^T (+ k_bias))), or a pool [N, bs, K' d]
    Tensor v;      // [B, L, K' d] x v_proj^T (+ v_bias), or a pool [N, bs, K' d]
    Tensor table;  // paged: i32 [B, L / bs] (MlaAttention::Cache::table); else undefined
    std::int64_t slots() const { return table.defined() ? table.dim(0) : k.dim(0); }
  };
  Cache make_cache(const kernels::Context& ctx, std::int64_t batch, std::int64_t max_len) const;
  // The training forward over a right-padded prompt batch (B x S tokens, S <= L; causal masking keeps the
  // padding out of every real token's output), then each slot's S keys and values written to cache rows
  // [0, S). Rows past a prompt's end hold padding until decode overwrites them.
  void prefill(const kernels::Context& ctx, const BatchShape& b, const Tensor& x, const Tensor& out,
               const Cache& cache) const;
  // One new token per slot: x, out [B, D]; positions i32 [B] (each token's RoPE position and cache row);
  // lengths i32 [B] = positions + 1, the cached tokens each query attends to (kernels/gqa_decode.hpp).
  void decode(const kernels::Context& ctx, const Tensor& x, const Tensor& positions, const Tensor& lengths,
              const Cache& cache, const Tensor& out) const;

 private:
  // One projection y = x W^T (+ bias) into [T, heads, d] (kv: the K/V heads, else the query heads), then its
  // per-head norm (pre-norm copy and 1/rms into pre, rstd) and RoPE. norm may be null.
  Tensor project(const kernels::Context& ctx, const BatchShape& b, const Tensor& x, const Param& w, const Param* bias,
                 const Param* norm, bool kv, Tensor& pre, Tensor& rstd, bool rotate) const;
  // The backward of project: dy [T, heads, d] (modified in place), dx (+)= dy W, dW, dbias, dnorm accumulated.
  void project_backward(const kernels::Context& ctx, const BatchShape& b, const Tensor& x, const Param& w,
                        const Param* bias, const Param* norm, const Tensor& pre, const Tensor& rstd, const Tensor& dy,
                        bool rotate, const Tensor& dx, bool accumulate_dx) const;

  // The rows of a k/v weight, bias or gradient this rank uses: its K/V head's when K/V heads are replicated.
  Tensor rows(const Tensor& t, bool kv) const;

  std::int64_t dim_, heads_, kv_heads_, head_dim_;
  bool replicated_kv_ = false;  // tp > n_kv_heads: each rank computes one K/V head that others compute too
  std::int64_t kv_row0_ = 0;    // first row of this rank's K/V head in a replicated k/v weight
  float eps_, scale_;
  kernels::RopeTables rope_;
  Param* q_proj_;
  Param* k_proj_;
  Param* v_proj_;
  Param* o_proj_;
  Param* q_bias_ = nullptr;  // qwen2
  Param* k_bias_ = nullptr;
  Param* v_bias_ = nullptr;
  Param* q_norm_ = nullptr;  // qwen3
  Param* k_norm_ = nullptr;
};

}  // namespace r1
