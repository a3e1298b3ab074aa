// Grouped GEMM for the routed experts: one GEMM per expert over its contiguous rows of the permuted tokens.
// On the GPU, large groups (training) get one tuned cuBLASLt call per non-empty expert; small groups
// (decode, small micro-batches: one_launch below) one cublasGemmGroupedBatchedEx launch for all of them,
// which keeps every SM busy where a loop would run a few tiles at a time.
#pragma once
#include <cstdint>
#include <span>

#include "kernels/gemm.hpp"

namespace r1::kernels {

// `offsets` (E+1 host values, from moe_permute) split the rows of the 2-D operands into E groups.
// Exactly one operand is 3-D, [E, ...], one matrix per expert:
//  - B per expert (forward and input gradient): C[g_e] = alpha op(A[g_e]) op(B_e) + beta C[g_e];
//    forward with W [E, N, K]: out = in W_e^T (trans_b); dgrad: d_in = d_out W_e (no transposes).
//  - C per expert (weight gradient): C_e = alpha A[g_e]^T B[g_e] + beta C_e, needs trans_a and not trans_b;
//    dW [E, N, K] += d_out^T in with beta = 1 (an expert without rows keeps beta * C_e).
// dtypes and the rest of the options as for kernels::gemm.
void grouped_gemm(const Context& ctx, const Tensor& a, const Tensor& b, const Tensor& c,
                  std::span<const std::int64_t> offsets, const GemmOptions& opt = {});

// Whether grouped_gemm takes the single grouped launch: a CUDA context, row-grouped C (forward, dgrad)
// in the operands' dtype, no TF32, at least two non-empty experts averaging at most
// kOneLaunchMaxRowsPerExpert rows.
constexpr std::int64_t kOneLaunchMaxRowsPerExpert = 256;
bool one_launch(const Context& ctx, const Tensor& a, const Tensor& c, std::span<const std::int64_t> offsets,
                const GemmOptions& opt);

}  // namespace r1::kernels
