// The routed experts of a decode batch of a few tokens, computed straight from the router's choices: no
// permutation, no expert offsets on the host, so a decode step runs without a host round trip and can be
// captured in a CUDA graph. Each (token, slot) pair reads its expert's weights once: the right shape when
// T x k is at most the number of experts (batch-1 to batch-8 decode), not for prefill or training.
#pragma once
#include "kernels/context.hpp"

namespace r1::kernels {

// For every token t, with e = expert_idx[t, j]:
//   h[t k + j] = swiglu(gate_up[e] x[t])                      (gate rows [0, I), up rows [I, 2I))
//   out[t]     = sum_j gates[t, j] * (down[e] h[t k + j])     (f32, slot order, rounded once)
// with the roundings of the permuted path (moe_permute, grouped GEMMs, swiglu_forward, moe_unpermute): the
// gate and up products, h and each expert's output are rounded to x's dtype; dot products in f32.
//   x: [T, D]; expert_idx: i32 [T, k] (0 <= e < E: checked on the CPU only); gates: f32 [T, k];
//   gate_up: [E, 2I, D]; down: [E, D, I]; h: [T k, I] (written); out: [T, D].
//   One float dtype (f32 or bf16) for x, the weights, h and out.
void moe_decode_experts(const Context& ctx, const Tensor& x, const Tensor& expert_idx, const Tensor& gates,
                        const Tensor& gate_up, const Tensor& down, const Tensor& h, const Tensor& out);

}  // namespace r1::kernels
