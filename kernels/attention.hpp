// Fused causal self-attention (forward and backward) with separate q/k and v head dims, as MLA needs,
// grouped-query attention (K/V heads shared by groups of query heads, as Llama and Qwen need), and optional
// segment ids for packed sequences. Never materialises the S x S score matrix on the GPU.
#pragma once
#include "kernels/context.hpp"

namespace r1::kernels {

// Largest head dim (of q/k or of v) the kernels accept.
constexpr std::int64_t kAttentionMaxHeadDim = 256;

// out[b,i,h,:] = sum_j P[b,h,i,j] v[b,j,g,:], P = softmax_j(scale * q[b,i,h,:] . k[b,j,g,:]) with g = h / (H / Hkv)
// the K/V head of query head h, over the keys j <= i (causal) that, when segment_ids is defined, also satisfy
// segment_ids[b,j] == segment_ids[b,i] (packed samples never see each other). Every query sees at least itself.
//   q: [B, S, H, Dqk]; k: [B, S, Hkv, Dqk]; v: [B, S, Hkv, Dv]; out: [B, S, H, Dv]; Hkv divides H (Hkv = H:
//   multi-head attention); all f32 or all bf16 (math in f32).
//   segment_ids: undefined, or i32 [B, S]. lse: f32 [B, H, S], the natural-log sum of exp of the scaled
//   scores of each query, saved for the backward pass. 1 <= Dqk, Dv <= 256; scale > 0.
void attention_forward(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, float scale,
                       const Tensor& segment_ids, const Tensor& out, const Tensor& lse);

// Gradients of the forward above given dout = dL/dout (same dtype and shape as out): dq, dk, dv are
// overwritten (shapes and dtype of q, k, v; dk and dv sum over the query heads sharing a K/V head).
// Deterministic: no atomics, the same bits run to run. With Hkv < H each query head reads its K/V head in
// place (no expanded copies), and a K/V head's dk, dv sum its group's query heads in f32, in head order.
void attention_backward(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                        const Tensor& dout, const Tensor& lse, const Tensor& segment_ids, float scale,
                        const Tensor& dq, const Tensor& dk, const Tensor& dv);

}  // namespace r1::kernels
