#include "model/gqa.hpp"

#include <algorithm>
#include <cmath>

#include "kernels/attention.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/gemm.hpp"
#include "kernels/rmsnorm.hpp"

namespace r1 {

namespace {
// A column of ones [T, 1]: bias add and bias gradient as rank-1 GEMMs (y += 1 b^T, db += dy^T 1).
Tensor ones(const kernels::Context& ctx, std::int64_t t, DType dt) {
  const Tensor o = ctx.empty({t, 1}, dt);
  kernels::fill(ctx, o, 1.0f);
  return o;
}
}  // namespace

kernels::RopeTables gqa_rope_tables(const kernels::Context& ctx, const ModelConfig& c) {
  const bool llama3 = c.rope_type == RopeType::llama3;
  const kernels::RopeConfig rc{.rope_dim = static_cast<int>(c.gqa_head_dim()),
                               .theta = c.rope_theta,
                               .factor = llama3 ? c.rope_factor : 1.0,
                               .original_seq_len = c.original_seq_len,
                               .llama3 = llama3,
                               .low_freq_factor = c.low_freq_factor,
                               .high_freq_factor = c.high_freq_factor};
  return kernels::rope_tables(ctx, rc, c.max_seq_len);
}

GqaAttention::GqaAttention(const ModelConfig& c, ParamStore& params, const std::string& prefix,
                           const kernels::RopeTables& rope, TpGroup tp)
    : dim_(c.dim),
      heads_(c.n_heads / tp.size()),
      kv_heads_(std::max<std::int64_t>(c.kv_heads() / tp.size(), 1)),
      head_dim_(c.gqa_head_dim()),
      eps_(static_cast<float>(c.norm_eps)),
      scale_(static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.gqa_head_dim())))),
      rope_(rope) {
  R1_REQUIRE(c.n_heads % c.kv_heads() == 0, prefix, ": n_kv_heads ", c.kv_heads(), " must divide n_heads ", c.n_heads);
  const std::int64_t h = c.n_heads, kv = c.kv_heads(), d = head_dim_, r = tp.rank(), n = tp.size();
  R1_REQUIRE(heads_ * n == h && (kv % n == 0 || n % kv == 0), prefix, ": ", h, " query heads and ", kv,
             " K/V heads over ", n, " tensor-parallel ranks (the query heads must split, and the K/V heads split or ",
             "divide the ranks)");
  replicated_kv_ = n > kv;
  kv_row0_ = replicated_kv_ ? r / (n / kv) * d : 0;
  R1_REQUIRE(rope.cos.defined() && 2 * rope.cos.dim(1) == head_dim_, prefix, ": rope tables ", rope.cos.str(),
             " do not match head_dim ", head_dim_);
  const auto whole = [](Param& p) {  // on every rank; each rank's heads add their share of the gradient
    p.tp = TpRole::partial;
    return &p;
  };
  // Rows by head; K/V rows whole on every rank when ranks share a K/V head (they read their head's rows).
  const auto rows = [&](const std::string& name, std::int64_t out, bool kv_rows) {
    if (kv_rows && replicated_kv_) return whole(params.add(prefix + name, {out, dim_}, Init::normal));
    return &params.add_split(prefix + name, {out, dim_}, {.dim = 0}, r, n, Init::normal);
  };
  q_proj_ = rows(".q_proj", h * d, false);
  k_proj_ = rows(".k_proj", kv * d, true);
  v_proj_ = rows(".v_proj", kv * d, true);
  o_proj_ = &params.add_split(prefix + ".o_proj", {dim_, h * d}, {.dim = 1}, r, n, Init::normal);
  if (c.arch == Arch::qwen2) {
    const auto bias = [&](const std::string& name, std::int64_t out, bool kv_rows) {
      if (kv_rows && replicated_kv_) return whole(params.add(prefix + name, {out}, Init::zeros, /*decay=*/false));
      return &params.add_split(prefix + name, {out}, {.dim = 0}, r, n, Init::zeros, /*decay=*/false);
    };
    q_bias_ = bias(".q_bias", h * d, false);
    k_bias_ = bias(".k_bias", kv * d, true);
    v_bias_ = bias(".v_bias", kv * d, true);
  }
  if (c.arch == Arch::qwen3) {
    q_norm_ = whole(params.add(prefix + ".q_norm", {d}, Init::ones, /*decay=*/false));
    k_norm_ = whole(params.add(prefix + ".k_norm", {d}, Init::ones, /*decay=*/false));
  }
}

Tensor GqaAttention::rows(const Tensor& t, bool kv) const {
  return kv && replicated_kv_ ? t.slice(kv_row0_, kv_row0_ + head_dim_) : t;
}

Tensor GqaAttention::project(const kernels::Context& ctx, const BatchShape& b, const Tensor& x, const Param& w,
                             const Param* bias, const Param* norm, bool kv, Tensor& pre, Tensor& rstd,
                             bool rotate) const {
  const std::int64_t t = x.dim(0), heads = kv ? kv_heads_ : heads_;
  const DType dt = x.dtype();
  const Tensor y = ctx.empty({t, heads, head_dim_}, dt);
  const Tensor y2 = y.view({t, heads * head_dim_});
  kernels::gemm(ctx, x, rows(w.compute, kv), y2, {.trans_b = true});
  if (bias != nullptr)
    kernels::gemm(ctx, ones(ctx, t, dt), rows(bias->compute, kv).view({1, heads * head_dim_}), y2, {.beta = 1.0f});
  if (norm != nullptr) {  // per-head RMSNorm: rows of [T heads, d]
    pre = y;
    rstd = ctx.empty({t * heads}, DType::f32);
    const Tensor normed = ctx.empty({t, heads, head_dim_}, dt);
    kernels::rmsnorm_forward(ctx, pre.view({t * heads, head_dim_}), norm->master, eps_,
                             normed.view({t * heads, head_dim_}), rstd);
    if (rotate) kernels::rope_forward(ctx, normed, b.positions, rope_, 0);
    return normed;
  }
  if (rotate) kernels::rope_forward(ctx, y, b.positions, rope_, 0);
  return y;
}

GqaAttention::Saved GqaAttention::forward(const kernels::Context& ctx, const BatchShape& b, const Tensor& x,
                                          const Tensor& out) const {
  const std::int64_t t = b.tokens(), d = head_dim_;
  const DType dt = o_proj_->compute.dtype();
  R1_REQUIRE(x.shape() == Shape({t, dim_}) && x.dtype() == dt && out.shape() == x.shape() && out.dtype() == dt,
             "GQA forward: x ", x.str(), " and out ", out.str(), " must be ", dtype_name(dt), " [", t, ", ", dim_,
             "] for a batch of ", b.batch, " x ", b.seq, " tokens");
  Saved s;
  s.x = x;
  s.q = project(ctx, b, x, *q_proj_, q_bias_, q_norm_, false, s.q_pre, s.q_rstd, true);
  s.k = project(ctx, b, x, *k_proj_, k_bias_, k_norm_, true, s.k_pre, s.k_rstd, true);
  Tensor unused_pre, unused_rstd;
  s.v = project(ctx, b, x, *v_proj_, v_bias_, nullptr, true, unused_pre, unused_rstd, false);
  s.o = ctx.empty({t, heads_ * d}, dt);
  s.lse = ctx.empty({b.batch, heads_, b.seq}, DType::f32);
  const Shape q4{b.batch, b.seq, heads_, d}, kv4{b.batch, b.seq, kv_heads_, d};
  kernels::attention_forward(ctx, s.q.view(q4), s.k.view(kv4), s.v.view(kv4), scale_, b.segment_ids, s.o.view(q4),
                             s.lse);
  kernels::gemm(ctx, s.o, o_proj_->compute, out, {.trans_b = true});
  return s;
}

void GqaAttention::project_backward(const kernels::Context& ctx, const BatchShape& b, const Tensor& x, const Param& w,
                                    const Param* bias, const Param* norm, const Tensor& pre, const Tensor& rstd,
                                    const Tensor& dy, bool rotate, const Tensor& dx, bool accumulate_dx) const {
  const std::int64_t t = x.dim(0), n_out = dy.dim(1) * head_dim_;
  const bool kv = &w != q_proj_;  // k or v: this rank's K/V head's rows of a replicated weight
  if (rotate) kernels::rope_backward(ctx, dy, b.positions, rope_, 0);
  if (norm != nullptr) {
    const Tensor dy_rows = dy.view({t * dy.dim(1), head_dim_});
    kernels::rmsnorm_backward(ctx, dy_rows, pre.view({t * dy.dim(1), head_dim_}), norm->master, rstd, dy_rows, norm->grad);
  }
  const Tensor dy2 = dy.view({t, n_out});
  if (bias != nullptr)
    kernels::gemm(ctx, dy2, ones(ctx, t, dy.dtype()), rows(bias->grad, kv).view({n_out, 1}), {.trans_a = true, .beta = 1.0f});
  kernels::gemm(ctx, dy2, x, rows(w.grad, kv), {.trans_a = true, .beta = 1.0f});
  kernels::gemm(ctx, dy2, rows(w.compute, kv), dx, {.beta = accumulate_dx ? 1.0f : 0.0f});
}

void GqaAttention::backward(const kernels::Context& ctx, const BatchShape& b, const Saved& s, const Tensor& dout,
                            const Tensor& dx) const {
  const std::int64_t t = b.tokens(), d = head_dim_;
  const DType dt = s.x.dtype();
  R1_REQUIRE(dout.shape() == s.x.shape() && dout.dtype() == dt && dx.shape() == s.x.shape() && dx.dtype() == dt,
             "GQA backward: dout ", dout.str(), " and dx ", dx.str(), " must match the forward input ", s.x.str());
  const Tensor d_o = ctx.empty({t, heads_ * d}, dt);
  kernels::gemm(ctx, dout, o_proj_->compute, d_o, {});
  kernels::gemm(ctx, dout, s.o, o_proj_->grad, {.trans_a = true, .beta = 1.0f});

  const Tensor dq = ctx.empty({t, heads_, d}, dt), dk = ctx.empty({t, kv_heads_, d}, dt);
  const Tensor dv = ctx.empty({t, kv_heads_, d}, dt);
  const Shape q4{b.batch, b.seq, heads_, d}, kv4{b.batch, b.seq, kv_heads_, d};
  kernels::attention_backward(ctx, s.q.view(q4), s.k.view(kv4), s.v.view(kv4), s.o.view(q4), d_o.view(q4), s.lse,
                              b.segment_ids, scale_, dq.view(q4), dk.view(kv4), dv.view(kv4));
  project_backward(ctx, b, s.x, *q_proj_, q_bias_, q_norm_, s.q_pre, s.q_rstd, dq, true, dx, false);
  project_backward(ctx, b, s.x, *k_proj_, k_bias_, k_norm_, s.k_pre, s.k_rstd, dk, true, dx, true);
  project_backward(ctx, b, s.x, *v_proj_, v_bias_, nullptr, Tensor(), Tensor(), dv, false, dx, true);
}

}  // namespace r1
