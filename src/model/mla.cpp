#include "model/mla.hpp"

#include <cmath>

#include "kernels/attention.hpp"
#include "kernels/copy_columns.hpp"
#include "kernels/mla_decode.hpp"
#include "kernels/rmsnorm.hpp"
#include "model/linear.hpp"

namespace r1 {

kernels::RopeTables mla_rope_tables(const kernels::Context& ctx, const ModelConfig& c) {
  const kernels::RopeConfig rc{.rope_dim = static_cast<int>(c.qk_rope_head_dim),
                               .theta = c.rope_theta,
                               .factor = c.rope_factor,
                               .original_seq_len = c.original_seq_len,
                               .beta_fast = c.beta_fast,
                               .beta_slow = c.beta_slow,
                               .mscale = c.mscale};
  return kernels::rope_tables(ctx, rc, c.max_seq_len);
}

MlaAttention::MlaAttention(const ModelConfig& c, ParamStore& params, const std::string& prefix,
                           const kernels::RopeTables& rope, TpGroup tp)
    : dim_(c.dim),
      heads_(c.n_heads / tp.size()),
      d_nope_(c.qk_nope_head_dim),
      d_rope_(c.qk_rope_head_dim),
      d_v_(c.v_head_dim),
      q_rank_(c.q_lora_rank),
      kv_rank_(c.kv_lora_rank),
      eps_(static_cast<float>(c.norm_eps)),
      rope_(rope) {
  R1_REQUIRE(rope.cos.defined() && 2 * rope.cos.dim(1) == d_rope_, prefix, ": rope tables ", rope.cos.str(),
             " do not match qk_rope_head_dim ", d_rope_);
  const std::int64_t d_qk = d_nope_ + d_rope_;
  scale_ = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d_qk)) * rope.attention_mscale *
                              rope.attention_mscale);
  R1_CHECK(heads_ * tp.size() == c.n_heads, prefix, ": ", c.n_heads, " heads over ", tp.size(), " tensor-parallel ranks");
  const std::int64_t h = c.n_heads, r = tp.rank(), n = tp.size();
  const auto partial = [](Param& p) {  // whole on every rank, each rank's heads add their share of the gradient
    p.tp = TpRole::partial;
    return &p;
  };
  const auto heads = [&](const std::string& name, std::int64_t per_head, std::int64_t in) {  // rows by head
    return &use_fp8(params, params.add_split(prefix + name, {h * per_head, in}, {.dim = 0}, r, n, Init::normal));
  };
  if (q_rank_ == 0) {
    q_proj_ = heads(".q_proj", d_qk, dim_);
  } else {
    q_a_proj_ = partial(use_fp8(params, params.add(prefix + ".q_a_proj", {q_rank_, dim_}, Init::normal)));
    q_a_norm_ = partial(params.add(prefix + ".q_a_norm", {q_rank_}, Init::ones, /*decay=*/false));
    q_b_proj_ = heads(".q_b_proj", d_qk, q_rank_);
  }
  kv_a_proj_ = partial(use_fp8(params, params.add(prefix + ".kv_a_proj", {kv_rank_ + d_rope_, dim_}, Init::normal)));
  kv_a_norm_ = partial(params.add(prefix + ".kv_a_norm", {kv_rank_}, Init::ones, /*decay=*/false));
  kv_b_proj_ = heads(".kv_b_proj", d_nope_ + d_v_, kv_rank_);
  o_proj_ = &use_fp8(params, params.add_split(prefix + ".o_proj", {dim_, h * d_v_}, {.dim = 1}, r, n, Init::normal));
}

Tensor MlaAttention::project(const kernels::Context& ctx, const Tensor& positions, const Tensor& x, Saved& s) const {
  const std::int64_t t = x.dim(0), d_qk = d_nope_ + d_rope_;
  const DType dt = o_proj_->compute.dtype();
  // Queries, rotated in place on the rope slice of every head.
  s.q = ctx.empty({t, heads_, d_qk}, dt);
  const Tensor q2 = s.q.view({t, heads_ * d_qk});
  if (q_rank_ == 0) {
    linear_forward(ctx, x, *q_proj_, q2);
  } else {
    s.q_a = ctx.empty({t, q_rank_}, dt);
    s.q_a_n = ctx.empty({t, q_rank_}, dt);
    s.q_a_rstd = ctx.empty({t}, DType::f32);
    linear_forward(ctx, x, *q_a_proj_, s.q_a);
    kernels::rmsnorm_forward(ctx, s.q_a, q_a_norm_->master, eps_, s.q_a_n, s.q_a_rstd);
    linear_forward(ctx, s.q_a_n, *q_b_proj_, q2);
  }
  kernels::rope_forward(ctx, s.q, positions, rope_, d_nope_);

  // kv_a in two GEMMs over row blocks of kv_a_proj (contiguous views), so the latent and the rope key
  // come out as separate tensors.
  s.c_kv = ctx.empty({t, kv_rank_}, dt);
  const Tensor k_pe = ctx.empty({t, d_rope_}, dt);
  linear_forward(ctx, x, *kv_a_proj_, s.c_kv, false, {0, kv_rank_});
  linear_forward(ctx, x, *kv_a_proj_, k_pe, false, {kv_rank_, kv_rank_ + d_rope_});
  kernels::rope_forward(ctx, k_pe, positions, rope_, 0);
  s.c_kv_n = ctx.empty({t, kv_rank_}, dt);
  s.kv_rstd = ctx.empty({t}, DType::f32);
  kernels::rmsnorm_forward(ctx, s.c_kv, kv_a_norm_->master, eps_, s.c_kv_n, s.kv_rstd);
  return k_pe;
}

MlaAttention::Saved MlaAttention::forward(const kernels::Context& ctx, const BatchShape& b, const Tensor& x,
                                          const Tensor& out) const {
  const std::int64_t t = b.tokens(), d_qk = d_nope_ + d_rope_;
  const DType dt = o_proj_->compute.dtype();
  R1_REQUIRE(x.shape() == Shape({t, dim_}) && x.dtype() == dt && out.shape() == x.shape() && out.dtype() == dt,
             "MLA forward: x ", x.str(), " and out ", out.str(), " must be ", dtype_name(dt), " [", t, ", ", dim_,
             "] for a batch of ", b.batch, " x ", b.seq, " tokens");
  Saved s;
  s.x = x;
  const Tensor k_pe = project(ctx, b.positions, x, s);

  // Per head [k_nope | v] rows split into k = [k_nope | k_pe] and v.
  const Tensor kv = ctx.empty({t, heads_, d_nope_ + d_v_}, dt);
  linear_forward(ctx, s.c_kv_n, *kv_b_proj_, kv.view({t, heads_ * (d_nope_ + d_v_)}));
  s.k = ctx.empty({t, heads_, d_qk}, dt);
  s.v = ctx.empty({t, heads_, d_v_}, dt);
  kernels::copy_columns(ctx, kv, 0, s.k, 0, d_nope_);
  kernels::copy_columns(ctx, k_pe, 0, s.k, d_nope_, d_rope_);  // one rope key, broadcast to every head
  kernels::copy_columns(ctx, kv, d_nope_, s.v, 0, d_v_);

  s.o = ctx.empty({t, heads_ * d_v_}, dt);
  s.lse = ctx.empty({b.batch, heads_, b.seq}, DType::f32);
  kernels::attention_forward(ctx, s.q.view({b.batch, b.seq, heads_, d_qk}), s.k.view({b.batch, b.seq, heads_, d_qk}),
                             s.v.view({b.batch, b.seq, heads_, d_v_}), scale_, b.segment_ids,
                             s.o.view({b.batch, b.seq, heads_, d_v_}), s.lse);
  linear_forward(ctx, s.o, *o_proj_, out);
  return s;
}

void MlaAttention::backward(const kernels::Context& ctx, const BatchShape& b, const Saved& s, const Tensor& dout,
                            const Tensor& dx) const {
  const std::int64_t t = b.tokens(), d_qk = d_nope_ + d_rope_;
  const DType dt = s.x.dtype();
  R1_REQUIRE(dout.shape() == s.x.shape() && dout.dtype() == dt && dx.shape() == s.x.shape() && dx.dtype() == dt,
             "MLA backward: dout ", dout.str(), " and dx ", dx.str(), " must match the forward input ", s.x.str());

  const Tensor d_o = ctx.empty({t, heads_ * d_v_}, dt);
  linear_dgrad(ctx, dout, *o_proj_, d_o, false);
  linear_wgrad(ctx, dout, s.o, *o_proj_);

  const Tensor dq = ctx.empty({t, heads_, d_qk}, dt), dk = ctx.empty({t, heads_, d_qk}, dt);
  const Tensor dv = ctx.empty({t, heads_, d_v_}, dt);
  const Shape qk4{b.batch, b.seq, heads_, d_qk}, v4{b.batch, b.seq, heads_, d_v_};
  kernels::attention_backward(ctx, s.q.view(qk4), s.k.view(qk4), s.v.view(v4), s.o.view(v4), d_o.view(v4), s.lse,
                              b.segment_ids, scale_, dq.view(qk4), dk.view(qk4), dv.view(v4));
  kernels::rope_backward(ctx, dq, b.positions, rope_, d_nope_);

  // Back to kv_b's per-head [k_nope | v] rows, and the shared rope key's gradient summed over heads.
  const Tensor dkv = ctx.empty({t, heads_, d_nope_ + d_v_}, dt);
  kernels::copy_columns(ctx, dk, 0, dkv, 0, d_nope_);
  kernels::copy_columns(ctx, dv, 0, dkv, d_nope_, d_v_);
  const Tensor dk_pe = ctx.empty({t, d_rope_}, dt);
  kernels::copy_columns(ctx, dk, d_nope_, dk_pe, 0, d_rope_);
  kernels::rope_backward(ctx, dk_pe, b.positions, rope_, 0);

  const Tensor dkv2 = dkv.view({t, heads_ * (d_nope_ + d_v_)});
  const Tensor dc_kv = ctx.empty({t, kv_rank_}, dt);
  linear_dgrad(ctx, dkv2, *kv_b_proj_, dc_kv, false);
  linear_wgrad(ctx, dkv2, s.c_kv_n, *kv_b_proj_);
  kernels::rmsnorm_backward(ctx, dc_kv, s.c_kv, kv_a_norm_->master, s.kv_rstd, dc_kv, kv_a_norm_->grad);

  const Rows latent{0, kv_rank_}, rope_key{kv_rank_, kv_rank_ + d_rope_};
  linear_dgrad(ctx, dc_kv, *kv_a_proj_, dx, false, latent);
  linear_dgrad(ctx, dk_pe, *kv_a_proj_, dx, true, rope_key);
  linear_wgrad(ctx, dc_kv, s.x, *kv_a_proj_, latent);
  linear_wgrad(ctx, dk_pe, s.x, *kv_a_proj_, rope_key);

  const Tensor dq2 = dq.view({t, heads_ * d_qk});
  if (q_rank_ == 0) {
    linear_dgrad(ctx, dq2, *q_proj_, dx, true);
    linear_wgrad(ctx, dq2, s.x, *q_proj_);
  } else {
    const Tensor dq_a = ctx.empty({t, q_rank_}, dt);
    linear_dgrad(ctx, dq2, *q_b_proj_, dq_a, false);
    linear_wgrad(ctx, dq2, s.q_a_n, *q_b_proj_);
    kernels::rmsnorm_backward(ctx, dq_a, s.q_a, q_a_norm_->master, s.q_a_rstd, dq_a, q_a_norm_->grad);
    linear_dgrad(ctx, dq_a, *q_a_proj_, dx, true);
    linear_wgrad(ctx, dq_a, s.x, *q_a_proj_);
  }
}

MlaAttention::Cache MlaAttention::make_cache(const kernels::Context& ctx, std::int64_t batch, std::int64_t max_len) const {
  R1_REQUIRE(batch >= 1 && max_len >= 1 && max_len <= rope_.cos.dim(0), "MLA cache of ", batch, " slots x ", max_len,
             " tokens: need at least one of each and at most ", rope_.cos.dim(0), " tokens ([model] max_seq_len)");
  const DType dt = o_proj_->compute.dtype();
  return Cache{ctx.empty({batch, max_len, kv_rank_}, dt), ctx.empty({batch, max_len, d_rope_}, dt), {}};
}

void MlaAttention::prefill(const kernels::Context& ctx, const BatchShape& b, const Tensor& x, const Tensor& out,
                           const Cache& cache) const {
  R1_REQUIRE(cache.slots() == b.batch, "MLA prefill of ", b.batch, " x ", b.seq, " tokens into a cache of ",
             cache.slots(), " slots");
  const Saved s = forward(ctx, b, x, out);
  const std::int64_t t = b.tokens(), d_qk = d_nope_ + d_rope_;
  // Head 0's rope slice of the keys is the rotated shared rope key (every head holds the same copy).
  const Tensor k_pe = ctx.empty({t, d_rope_}, s.k.dtype());
  kernels::copy_columns(ctx, s.k.view({t, heads_ * d_qk}), d_nope_, k_pe, 0, d_rope_);
  const Tensor start = ctx.zeros({b.batch}, DType::i32);
  kernels::kv_cache_write(ctx, s.c_kv_n.view({b.batch, b.seq, kv_rank_}), start, cache.kv, cache.table);
  kernels::kv_cache_write(ctx, k_pe.view({b.batch, b.seq, d_rope_}), start, cache.pe, cache.table);
}

void MlaAttention::decode(const kernels::Context& ctx, const Tensor& x, const Tensor& positions, const Tensor& lengths,
                          const Cache& cache, const Tensor& out) const {
  const std::int64_t n = x.dim(0);
  const DType dt = o_proj_->compute.dtype();
  R1_REQUIRE(x.shape() == Shape({n, dim_}) && x.dtype() == dt && out.shape() == x.shape() && out.dtype() == dt &&
                 cache.slots() == n,
             "MLA decode: x ", x.str(), " and out ", out.str(), " must be ", dtype_name(dt), " [B, ", dim_,
             "] with B = the cache's ", cache.slots(), " slots");
  Saved s;
  const Tensor k_pe = project(ctx, positions, x, s);
  kernels::kv_cache_write(ctx, s.c_kv_n.view({n, 1, kv_rank_}), positions, cache.kv, cache.table);
  kernels::kv_cache_write(ctx, k_pe.view({n, 1, d_rope_}), positions, cache.pe, cache.table);
  const Tensor o = ctx.empty({n, heads_, d_v_}, dt);
  kernels::mla_decode_attention(ctx, s.q, kv_b_proj_->compute, cache.kv, cache.pe, lengths, scale_, o, cache.table);
  linear_forward(ctx, o.view({n, heads_ * d_v_}), *o_proj_, out);
}

}  // namespace r1
