// Grouped-query attention at generation (GqaAttention's inference members): the KV cache of this rank's
// K/V heads, prefill through the training forward, decode of one token per slot over the cache.
#include "kernels/gemm.hpp"
#include "kernels/gqa_decode.hpp"
#include "kernels/mla_decode.hpp"
#include "model/gqa.hpp"

namespace r1 {

GqaAttention::Cache GqaAttention::make_cache(const kernels::Context& ctx, std::int64_t batch, std::int64_t max_len) const {
  R1_REQUIRE(batch >= 1 && max_len >= 1 && max_len <= rope_.cos.dim(0), "GQA cache of ", batch, " slots x ", max_len,
             " tokens: need at least one of each and at most ", rope_.cos.dim(0), " tokens ([model] max_seq_len)");
  const DType dt = o_proj_->compute.dtype();
  const Shape shape{batch, max_len, kv_heads_ * head_dim_};
  return Cache{ctx.empty(shape, dt), ctx.empty(shape, dt), {}};
}

void GqaAttention::prefill(const kernels::Context& ctx, const BatchShape& b, const Tensor& x, const Tensor& out,
                           const Cache& cache) const {
  R1_REQUIRE(cache.slots() == b.batch, "GQA prefill of ", b.batch, " x ", b.seq, " tokens into a cache of ",
             cache.slots(), " slots");
  const Saved s = forward(ctx, b, x, out);
  const Tensor start = ctx.zeros({b.batch}, DType::i32);
  const Shape rows{b.batch, b.seq, kv_heads_ * head_dim_};  // [B S, K', d] -> [B, S, K' d]
  kernels::kv_cache_write(ctx, s.k.view(rows), start, cache.k, cache.table);
  kernels::kv_cache_write(ctx, s.v.view(rows), start, cache.v, cache.table);
}

void GqaAttention::decode(const kernels::Context& ctx, const Tensor& x, const Tensor& positions, const Tensor& lengths,
                          const Cache& cache, const Tensor& out) const {
  const std::int64_t n = x.dim(0), d = head_dim_;
  const DType dt = o_proj_->compute.dtype();
  R1_REQUIRE(x.shape() == Shape({n, dim_}) && x.dtype() == dt && out.shape() == x.shape() && out.dtype() == dt &&
                 cache.slots() == n,
             "GQA decode: x ", x.str(), " and out ", out.str(), " must be ", dtype_name(dt), " [B, ", dim_,
             "] with B = the cache's ", cache.slots(), " slots");
  BatchShape b;  // one token per slot, at its own position
  b.batch = n;
  b.seq = 1;
  b.positions = positions;
  Tensor unused_pre, unused_rstd;
  const Tensor q = project(ctx, b, x, *q_proj_, q_bias_, q_norm_, false, unused_pre, unused_rstd, true);
  const Tensor k = project(ctx, b, x, *k_proj_, k_bias_, k_norm_, true, unused_pre, unused_rstd, true);
  const Tensor v = project(ctx, b, x, *v_proj_, v_bias_, nullptr, true, unused_pre, unused_rstd, false);
  kernels::kv_cache_write(ctx, k.view({n, 1, kv_heads_ * d}), positions, cache.k, cache.table);
  kernels::kv_cache_write(ctx, v.view({n, 1, kv_heads_ * d}), positions, cache.v, cache.table);
  const Tensor o = ctx.empty({n, heads_, d}, dt);
  const Shape cache4{cache.k.dim(0), cache.k.dim(1), kv_heads_, d};  // [B or N, L or bs, K', d]
  kernels::gqa_decode_attention(ctx, q, cache.k.view(cache4), cache.v.view(cache4), lengths, scale_, o, cache.table);
  kernels::gemm(ctx, o.view({n, heads_ * d}), o_proj_->compute, out, {.trans_b = true});
}

}  // namespace r1
