#include "model/head.hpp"

#include "kernels/copy_columns.hpp"
#include "kernels/cross_entropy.hpp"
#include "kernels/gather_rows.hpp"
#include "kernels/gemm.hpp"
#include "kernels/profile.hpp"
#include "kernels/reduce.hpp"
#include "kernels/rmsnorm.hpp"
#include "model/block.hpp"

namespace r1 {

using kernels::Context;

LmHead::LmHead(const Param& norm, const Param& head, const TpRegions& tp, double eps, DType dtype)
    : norm_(norm), head_(head), tp_(tp), eps_(static_cast<float>(eps)), dtype_(dtype) {}

LmHead::Saved LmHead::forward(const Context& ctx, const Tensor& x, const Tensor& targets, const Tensor& loss_sum) const {
  const std::int64_t T = targets.numel(), R = x.dim(0), D = x.dim(1);
  Saved s;
  s.x = x;
  s.normed = ctx.empty({R, D}, dtype_);
  s.rstd = ctx.empty({R}, DType::f32);
  kernels::rmsnorm_forward(ctx, x, norm_.master, eps_, s.normed, s.rstd);
  s.normed = tp_.sp_gather(ctx, s.normed);  // the head (vocabulary-parallel) reads every token
  s.logits = ctx.empty({T, head_.shape[0]}, dtype_);
  linear_forward(ctx, s.normed, head_, s.logits);
  s.losses = ctx.empty({T}, DType::f32);
  s.lse = ctx.empty({T}, DType::f32);
  vocab_parallel_cross_entropy(ctx, tp_.group, s.logits, targets, s.losses, s.lse);
  kernels::reduce(ctx, kernels::ReduceOp::sum, s.losses, loss_sum);
  return s;
}

Tensor LmHead::backward(const Context& ctx, Saved& s, const Tensor& targets, const Tensor& dloss) const {
  const std::int64_t T = targets.numel();
  kernels::cross_entropy_backward(ctx, s.logits, targets, s.lse, dloss, s.logits);  // dlogits overwrite the logits
  Tensor dnormed = ctx.empty(s.x.shape(), dtype_);
  const Tensor partial = tp_.partial_buffer(ctx, dnormed, T);
  linear_backward(ctx, s.logits, s.normed, head_, partial, false);
  tp_.tp_complete(ctx, partial, dnormed);
  return norm_backward(ctx, s, dnormed);
}

Tensor LmHead::norm_backward(const Context& ctx, const Saved& s, const Tensor& dnormed) const {
  Tensor dx = ctx.empty(s.x.shape(), dtype_);
  kernels::rmsnorm_backward(ctx, dnormed, s.x, norm_.master, s.rstd, dx, norm_.grad);
  return dx;
}

Tensor LmHead::logits(const Context& ctx, const Tensor& x, const Tensor& rows) const {
  const std::int64_t B = rows.defined() ? rows.numel() : x.dim(0), D = x.dim(1), n = head_.shape[0];
  const kernels::ProfileRegion region(ctx, "head");
  // RMSNorm is per row, so norming the gathered rows gives the training forward's values.
  Tensor last = x;
  if (rows.defined()) {
    last = ctx.empty({B, D}, dtype_);
    kernels::gather_rows(ctx, x, rows, last);
  }
  const Tensor normed = ctx.empty({B, D}, dtype_);
  kernels::rmsnorm_forward(ctx, last, norm_.master, eps_, normed, ctx.empty({B}, DType::f32));
  const Tensor logits = ctx.empty({B, n * tp_.group.size()}, DType::f32);
  if (!tp_.group.active()) {
    kernels::gemm(ctx, normed, head_.compute, logits, {.trans_b = true});
    return logits;
  }
  // Vocabulary-parallel head: every rank's [B, V / tp] columns, gathered and placed side by side, so each
  // rank samples from the same whole rows.
  const Tensor mine = ctx.empty({B, n}, DType::f32), all = ctx.empty({tp_.group.size() * B, n}, DType::f32);
  kernels::gemm(ctx, normed, head_.compute, mine, {.trans_b = true});
  {
    const kernels::ProfileRegion comm(ctx, "tp_comm");
    tp_.group.all_gather(mine, all);
  }
  for (int r = 0; r < tp_.group.size(); ++r)
    kernels::copy_columns(ctx, all.slice(r * B, (r + 1) * B), 0, logits, r * n, n);
  return logits;
}

}  // namespace r1
