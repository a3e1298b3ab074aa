// Fused softmax + cross-entropy over the vocabulary: per-token losses and log-sum-exp in one pass over
// the logits, and a backward that can overwrite the logits with their gradient (no second V-wide buffer).
// Token log-probabilities of the targets are -losses.
#pragma once
#include "kernels/context.hpp"

namespace r1::kernels {

// logits: [T, V] f32|bf16; targets: i32 [T], -1 = ignored, kTargetElsewhere = counted but its column
// lies in another rank's shard of a vocabulary-parallel head. losses: f32 [T], lse - logits[target]
// (0 for ignored tokens, lse for targets elsewhere); lse: f32 [T], log sum_j exp(logits_j), saved for the
// backward. Targets must be -1, kTargetElsewhere or in [0, V): checked on the CPU; on the GPU an
// out-of-range target gives a NaN loss and NaN gradients (never an out-of-bounds read), so the caller
// should validate targets where it builds them.
inline constexpr std::int32_t kTargetElsewhere = -2;
void cross_entropy_forward(const Context& ctx, const Tensor& logits, const Tensor& targets, const Tensor& losses,
                           const Tensor& lse);
// dloss: f32 [T], the weight of each token's loss (mask and normalisation chosen by the caller).
// dlogits: [T, V] of logits' dtype, = (softmax(logits) - onehot(target)) * dloss (no onehot for a
// target elsewhere), and 0 for ignored tokens. With a vocabulary-parallel head, lse is the log-sum-exp
// over the whole vocabulary. dlogits MAY alias logits (in place).
void cross_entropy_backward(const Context& ctx, const Tensor& logits, const Tensor& targets, const Tensor& lse,
                            const Tensor& dloss, const Tensor& dlogits);

}  // namespace r1::kernels
