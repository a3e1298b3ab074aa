// MoE load balancing of DeepSeek-V3: the sequence-wise balance loss (forward, and backward straight to the
// router logits) and the auxiliary-loss-free update of the per-expert selection bias.
#pragma once
#include "kernels/moe_router.hpp"

namespace r1::kernels {

struct BalanceParams {
  std::int64_t seq_len = 1;  // L: the T tokens are T / L sequences of L tokens
  float alpha = 1e-4f;
  ScoreFunc score_func = ScoreFunc::sigmoid;  // the router's, for the backward through the scores
};

// For each sequence b of L tokens: f_i = E / (k L) * count_{b,i}, P_i = (1/L) sum_t s'_{i,t} with
// s' = scores / (their sum over all E experts) per token; loss = alpha * mean over sequences of sum_i f_i P_i.
// scores f32 [T, E] and expert_idx i32 [T, k] from moe_router_forward; writes loss f32 [1] and counts i32 [E]
// (tokens routed to each expert over all T tokens: the expert load, and the input of moe_bias_update).
// Work stays on the device queue.
void moe_balance_forward(const Context& ctx, const Tensor& scores, const Tensor& expert_idx, const BalanceParams& p,
                         const Tensor& loss, const Tensor& counts);
// dlogits f32 [T, E] += dloss * d(loss)/d(router logits), through s' and the score function, with the
// selection held fixed: add it to moe_router_backward's result.
void moe_balance_backward(const Context& ctx, float dloss, const Tensor& scores, const Tensor& expert_idx,
                          const BalanceParams& p, const Tensor& dlogits);

// bias_i -= gamma * sign(counts_i - mean_j counts_j): overloaded experts become less attractive. counts i32 [E]
// (summed over the data-parallel group by the caller), bias f32 [E].
void moe_bias_update(const Context& ctx, const Tensor& counts, float gamma, const Tensor& bias);

}  // namespace r1::kernels
