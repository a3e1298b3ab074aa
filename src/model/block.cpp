#include "model/block.hpp"

#include "kernels/elementwise.hpp"
#include "kernels/profile.hpp"
#include "kernels/rmsnorm.hpp"

namespace r1 {

using kernels::Context;

Param& residual_param(Param& p, const TpRegions& tp) {
  if (tp.sequence_parallel) p.tp = TpRole::partial;
  return p;
}

Param& residual_norm(ParamStore& params, const std::string& name, std::int64_t dim, const TpRegions& tp) {
  return residual_param(params.add(name, {dim}, Init::ones, /*decay=*/false), tp);
}

TransformerBlock::TransformerBlock(const ModelConfig& c, ParamStore& params, const std::string& prefix, bool moe,
                                   const kernels::RopeTables& rope, const TpRegions& tp, parallel::Communicator* ep,
                                   bool overlap_expert_comm)
    : dim_(c.dim), eps_(static_cast<float>(c.norm_eps)), dtype_(params.compute_dtype()), tp_(tp) {
  const std::size_t before = params.all().size();
  attn_norm_ = &residual_norm(params, prefix + ".attn_norm", c.dim, tp);
  if (c.gqa()) gqa_ = std::make_unique<GqaAttention>(c, params, prefix + ".attn", rope, tp.group);
  else attn_ = std::make_unique<MlaAttention>(c, params, prefix + ".attn", rope, tp.group);
  ffn_norm_ = &residual_norm(params, prefix + ".ffn_norm", c.dim, tp);
  if (moe) moe_ = std::make_unique<MoeFfn>(c, params, prefix + ".moe", ep, tp.group, overlap_expert_comm);
  else mlp_ = std::make_unique<DenseMlp>(params, prefix + ".mlp", c.dim, c.dense_inter_dim, tp.group);
  for (std::size_t i = before; i < params.all().size(); ++i) params_.push_back(params.all()[i].get());
}

std::unique_ptr<TransformerBlock::Saved> TransformerBlock::forward(const Context& ctx, const BatchShape& b,
                                                                   const Tensor& x, const Tensor& y, ForwardResult& r,
                                                                   bool keep) const {
  const std::int64_t T = b.tokens(), R = tp_.residual_rows(T);  // R: this rank's rows of the residual stream
  auto s = std::make_unique<Saved>();
  s->x = x;
  s->n1 = ctx.empty({R, dim_}, dtype_);
  s->rstd1 = ctx.empty({R}, DType::f32);
  kernels::rmsnorm_forward(ctx, x, attn_norm_->master, eps_, s->n1, s->rstd1);
  s->h = ctx.empty({R, dim_}, dtype_);
  {
    const kernels::ProfileRegion region(ctx, "attn");
    const Tensor partial = tp_.partial_buffer(ctx, s->h, T);
    const Tensor n1 = tp_.sp_gather(ctx, s->n1);
    if (gqa_) s->gqa = gqa_->forward(ctx, b, n1, partial);
    else s->attn = attn_->forward(ctx, b, n1, partial);
    tp_.tp_complete(ctx, partial, s->h);
  }
  kernels::axpy(ctx, 1.0f, x, s->h);  // h = x + attn(norm(x))
  s->n2 = ctx.empty({R, dim_}, dtype_);
  s->rstd2 = ctx.empty({R}, DType::f32);
  kernels::rmsnorm_forward(ctx, s->h, ffn_norm_->master, eps_, s->n2, s->rstd2);
  const kernels::ProfileRegion ffn_region(ctx, moe_ ? "moe" : "mlp");
  const Tensor partial = tp_.partial_buffer(ctx, y, T), n2 = tp_.sp_gather(ctx, s->n2);
  if (moe_) {
    MoeStats stats;
    s->moe = moe_->forward(ctx, b, n2, partial, stats);
    kernels::axpy(ctx, 1.0f, stats.balance_loss, r.balance_loss);
    r.expert_counts.push_back(stats.counts);
  } else {
    s->mlp = mlp_->forward(ctx, n2, partial);
  }
  tp_.tp_complete(ctx, partial, y);
  kernels::axpy(ctx, 1.0f, s->h, y);  // y = h + ffn(norm(h))
  if (!keep) {                        // keep only the input; backward rebuilds the rest
    auto kept = std::make_unique<Saved>();
    kept->x = x;
    return kept;
  }
  return s;
}

void TransformerBlock::backward(const Context& ctx, const BatchShape& b, Saved& s0, const Tensor& dy, const Tensor& dx,
                                float balance_weight) const {
  const std::int64_t T = b.tokens(), R = tp_.residual_rows(T);
  std::unique_ptr<Saved> rebuilt;
  Saved* s = &s0;
  if (!s0.n1.defined()) {  // full recompute: run the forward again (stats of this pass are discarded)
    ForwardResult scratch;
    scratch.balance_loss = ctx.zeros({1}, DType::f32);
    rebuilt = forward(ctx, b, s0.x, ctx.empty({R, dim_}, dtype_), scratch, /*keep=*/true);
    s = rebuilt.get();
  }
  // y = h + f(n2): dh = dy + n2-path. Under SP the region's input gradient is the all-gathered dy (the
  // adjoint of the forward's reduce-scatter) and its partial dn2 is reduce-scattered (of the all-gather).
  Tensor dn2 = ctx.empty({R, dim_}, dtype_);
  {
    const kernels::ProfileRegion region(ctx, moe_ ? "moe" : "mlp");
    const Tensor partial = tp_.partial_buffer(ctx, dn2, T), dy_all = tp_.sp_gather(ctx, dy);
    if (moe_) moe_->backward(ctx, b, *s->moe, dy_all, partial, balance_weight);
    else mlp_->backward(ctx, *s->mlp, dy_all, partial);
    tp_.tp_complete(ctx, partial, dn2);
  }
  Tensor dh = ctx.empty({R, dim_}, dtype_);
  kernels::rmsnorm_backward(ctx, dn2, s->h, ffn_norm_->master, s->rstd2, dh, ffn_norm_->grad);
  kernels::axpy(ctx, 1.0f, dy, dh);
  // h = x + attn(n1): dx = dh + n1-path.
  Tensor dn1 = ctx.empty({R, dim_}, dtype_);
  {
    const kernels::ProfileRegion region(ctx, "attn");
    const Tensor partial = tp_.partial_buffer(ctx, dn1, T);
    const Tensor dh_all = tp_.sp_gather(ctx, dh);
    if (gqa_) gqa_->backward(ctx, b, *s->gqa, dh_all, partial);
    else attn_->backward(ctx, b, *s->attn, dh_all, partial);
    tp_.tp_complete(ctx, partial, dn1);
  }
  kernels::rmsnorm_backward(ctx, dn1, s->x, attn_norm_->master, s->rstd1, dx, attn_norm_->grad);
  kernels::axpy(ctx, 1.0f, dh, dx);
}

void TransformerBlock::infer(const Context& ctx, const BatchShape& b, const Tensor& x, const Tensor& y,
                             const std::function<void(const Tensor&, const Tensor&)>& attention) const {
  const std::int64_t T = b.tokens();
  const Tensor n1 = ctx.empty({T, dim_}, dtype_), rstd = ctx.empty({T}, DType::f32);
  kernels::rmsnorm_forward(ctx, x, attn_norm_->master, eps_, n1, rstd);
  const Tensor h = ctx.empty({T, dim_}, dtype_);
  {
    const kernels::ProfileRegion region(ctx, "attn");
    attention(n1, h);
    tp_.tp_reduce(ctx, h);
  }
  kernels::axpy(ctx, 1.0f, x, h);
  const Tensor n2 = ctx.empty({T, dim_}, dtype_);
  kernels::rmsnorm_forward(ctx, h, ffn_norm_->master, eps_, n2, rstd);
  const kernels::ProfileRegion region(ctx, moe_ ? "moe" : "mlp");
  if (moe_) {
    moe_->infer(ctx, b, n2, y);
  } else {
    mlp_->forward(ctx, n2, y);
  }
  tp_.tp_reduce(ctx, y);
  kernels::axpy(ctx, 1.0f, h, y);
}

}  // namespace r1
