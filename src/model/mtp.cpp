#include "model/mtp.hpp"

#include <string>

#include "kernels/elementwise.hpp"
#include "kernels/embedding.hpp"
#include "kernels/gemm.hpp"
#include "kernels/profile.hpp"
#include "kernels/rmsnorm.hpp"

namespace r1 {

using kernels::Context;

MtpModule::MtpModule(const ModelConfig& c, ParamStore& params, std::int64_t index, const kernels::RopeTables& rope,
                     const TpRegions& tp, parallel::Communicator* ep, bool overlap_expert_comm, const Param& embed,
                     const Param& head)
    : dim_(c.dim), eps_(static_cast<float>(c.norm_eps)), dtype_(params.compute_dtype()),
      loss_scale_(c.mtp_lambda / static_cast<double>(c.mtp_depth)), tp_(tp), embed_(embed) {
  const std::string p = "mtp." + std::to_string(index);
  enorm_ = &residual_norm(params, p + ".enorm", c.dim, tp);
  hnorm_ = &residual_norm(params, p + ".hnorm", c.dim, tp);
  proj_e_ = &residual_param(params.add(p + ".proj_e", {c.dim, c.dim}, Init::normal), tp);
  proj_h_ = &residual_param(params.add(p + ".proj_h", {c.dim, c.dim}, Init::normal), tp);
  const Param& norm = residual_norm(params, p + ".norm", c.dim, tp);
  block_ = std::make_unique<TransformerBlock>(c, params, p + ".block", !c.dense, rope, tp, ep, overlap_expert_comm);
  head_ = std::make_unique<LmHead>(norm, head, tp, c.norm_eps, dtype_);
}

MtpModule::Saved MtpModule::forward(const Context& ctx, const DeviceBatch& b, const Tensor& trunk, ForwardResult& r,
                                    bool keep) const {
  const kernels::ProfileRegion region(ctx, "mtp");
  const std::int64_t T = b.shape.tokens(), R = tp_.residual_rows(T);
  Saved s;
  s.trunk = trunk;
  s.emb = ctx.empty({R, dim_}, dtype_);
  const Tensor partial = tp_.partial_buffer(ctx, s.emb, T);  // vocabulary-parallel: a partial sum under TP
  kernels::embedding_forward(ctx, embed_.compute, b.shard_mtp_ids, partial);
  tp_.tp_complete(ctx, partial, s.emb);
  s.en = ctx.empty({R, dim_}, dtype_);
  s.en_rstd = ctx.empty({R}, DType::f32);
  kernels::rmsnorm_forward(ctx, s.emb, enorm_->master, eps_, s.en, s.en_rstd);
  s.hn = ctx.empty({R, dim_}, dtype_);
  s.hn_rstd = ctx.empty({R}, DType::f32);
  kernels::rmsnorm_forward(ctx, trunk, hnorm_->master, eps_, s.hn, s.hn_rstd);
  s.x = ctx.empty({R, dim_}, dtype_);  // x = [en | hn] eh_proj^T = en proj_e^T + hn proj_h^T
  linear_forward(ctx, s.en, *proj_e_, s.x);
  kernels::gemm(ctx, s.hn, proj_h_->compute, s.x, {.trans_b = true, .beta = 1.0f});
  s.y = ctx.empty({R, dim_}, dtype_);
  s.block = block_->forward(ctx, b.shape, s.x, s.y, r, keep);
  r.mtp_loss_sum = ctx.empty({1}, DType::f32);
  s.head = head_->forward(ctx, s.y, b.shard_mtp_targets, r.mtp_loss_sum);
  return s;
}

void MtpModule::backward(const Context& ctx, const DeviceBatch& b, Saved& s, const Tensor& dloss, float token_weight,
                         float balance_weight, const Tensor& dtrunk) const {
  const kernels::ProfileRegion region(ctx, "mtp");
  const std::int64_t R = s.x.dim(0);
  kernels::fill(ctx, dloss, token_weight * static_cast<float>(loss_scale_));
  const Tensor dy = head_->backward(ctx, s.head, b.shard_mtp_targets, dloss);
  Tensor dx = ctx.empty({R, dim_}, dtype_);
  block_->backward(ctx, b.shape, *s.block, dy, dx, balance_weight);
  Tensor den = ctx.empty({R, dim_}, dtype_), dhn = ctx.empty({R, dim_}, dtype_);
  linear_backward(ctx, dx, s.en, *proj_e_, den, false);
  linear_backward(ctx, dx, s.hn, *proj_h_, dhn, false);
  Tensor demb = ctx.empty({R, dim_}, dtype_), dh = ctx.empty({R, dim_}, dtype_);
  kernels::rmsnorm_backward(ctx, den, s.emb, enorm_->master, s.en_rstd, demb, enorm_->grad);
  kernels::embedding_backward(ctx, tp_.sp_gather(ctx, demb), b.shard_mtp_ids, embed_.grad);
  kernels::rmsnorm_backward(ctx, dhn, s.trunk, hnorm_->master, s.hn_rstd, dh, hnorm_->grad);
  kernels::axpy(ctx, 1.0f, dh, dtrunk);
}

}  // namespace r1
