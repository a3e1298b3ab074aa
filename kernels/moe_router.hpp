// MoE router of DeepSeek-V2/V3: affinity scores from the router logits, group-limited top-k selection on
// bias-adjusted scores, combine weights (gates) from the unbiased scores; and the gates' backward to the logits.
#pragma once
#include "kernels/context.hpp"

namespace r1::kernels {

enum class ScoreFunc { sigmoid, softmax };
const char* score_func_name(ScoreFunc f);

struct RouterParams {
  ScoreFunc score_func = ScoreFunc::sigmoid;
  int top_k = 1;
  int n_groups = 1;         // experts form n_groups equal contiguous groups (at most 64)
  int topk_groups = 1;      // groups kept per token; a group's score is the sum of its top-2 biased scores
  float route_scale = 1.0f;
  // Gates renormalised to sum 1 over the selected experts before route_scale. DeepSeek-V3 (sigmoid) sets it;
  // V2-Lite (softmax, norm_topk_prob false) uses the raw probabilities of the selected experts.
  bool normalize = true;
};

// logits: f32 [T, E] (the router GEMM's output); bias: f32 [E], or an undefined tensor for no bias. The bias
// only steers the selection. Outputs: scores f32 [T, E] (the unbiased affinities, for the backward and the
// balance loss), expert_idx i32 [T, k] ordered by descending biased score, gates f32 [T, k].
// Ties go to the lower group and expert index; the selection is bit-identical on every backend.
void moe_router_forward(const Context& ctx, const Tensor& logits, const Tensor& bias, const RouterParams& p,
                        const Tensor& scores, const Tensor& expert_idx, const Tensor& gates);

// Routing replay: moe_router_forward with expert_idx read as well as written. A row whose first id is >= 0
// keeps its experts (each in [0, E): checked on the CPU, the caller's duty on the GPU) and gets its gates
// from these scores, whatever the bias; a row of -1 is routed as moe_router_forward routes it.
void moe_router_replay(const Context& ctx, const Tensor& logits, const Tensor& bias, const RouterParams& p,
                       const Tensor& scores, const Tensor& expert_idx, const Tensor& gates);

// dlogits f32 [T, E] = d(sum dgates * gates) / d(logits), overwritten: the exact gradient through the
// normalisation and the score function for the forward's selection (which is piecewise constant; the bias
// gets no gradient).
void moe_router_backward(const Context& ctx, const Tensor& dgates, const Tensor& scores, const Tensor& expert_idx,
                         const Tensor& gates, const RouterParams& p, const Tensor& dlogits);

// Shapes, dtypes and parameters agree (T and E from scores, k from expert_idx); user errors otherwise.
void check_router(const RouterParams& p, const Tensor& scores, const Tensor& expert_idx, const Tensor& gates,
                  const char* op);

}  // namespace r1::kernels
