// The end of a prediction path, the model's and each MTP module's: an RMSNorm of the residual stream, the
// output head (vocabulary-parallel under TP) and the cross-entropy of every token; and the head's logits at
// inference.
#pragma once
#include "kernels/context.hpp"
#include "model/params.hpp"
#include "model/tensor_parallel.hpp"

namespace r1 {

class LmHead {
 public:
  // What the backward reads. logits: [T, V / tp] in the compute dtype (the dlogits after the backward).
  struct Saved {
    Tensor x;               // the input, this rank's residual rows [R, D]
    Tensor normed, rstd;    // normed: every token's [T, D] (gathered under SP); rstd f32 [R]
    Tensor logits, lse, losses;  // lse, losses f32 [T]; losses 0 where the target is -1
  };

  // `norm` [D] and `head` [V / tp, D] (the embedding when tied): parameters registered by the caller.
  LmHead(const Param& norm, const Param& head, const TpRegions& tp, double eps, DType dtype);
  // targets: i32 [T], columns of this rank's vocabulary shard (DeviceBatch::shard_targets); loss_sum
  // (f32 [1]) receives the sum of the losses.
  Saved forward(const kernels::Context& ctx, const Tensor& x, const Tensor& targets, const Tensor& loss_sum) const;
  // From per-token loss weights dloss (f32 [T]): accumulates the head's and the norm's gradients and
  // returns d(loss)/d(x) [R, D].
  Tensor backward(const kernels::Context& ctx, Saved& s, const Tensor& targets, const Tensor& dloss) const;
  // The norm's backward alone, from d(loss)/d(normed) [R, D] in the compute dtype: returns d(loss)/d(x).
  Tensor norm_backward(const kernels::Context& ctx, const Saved& s, const Tensor& dnormed) const;
  // Inference: f32 [B, V] logits (the whole vocabulary on every TP rank) of the rows `rows` (i32 [B]) of
  // x [T, D], or of every row when `rows` is undefined.
  Tensor logits(const kernels::Context& ctx, const Tensor& x, const Tensor& rows) const;

 private:
  const Param& norm_;
  const Param& head_;
  TpRegions tp_;
  float eps_;
  DType dtype_;
};

}  // namespace r1
