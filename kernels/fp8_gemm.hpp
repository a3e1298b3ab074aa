// Block-scaled FP8 GEMM as DeepSeek-V3 trains its linear layers: C = alpha A_q B_q^T + beta C with E4M3
// operands, A in 1 x 128 tiles along the inner dimension K and B in 128 x 128 blocks (weights) or 1 x 128
// tiles (the weight gradient's second activation), FP32 accumulation (operands from kernels/fp8.hpp's
// quantisations, the transposed one for the weight gradient).
#pragma once
#include "kernels/fp8.hpp"

namespace r1::kernels {

struct Fp8GemmOptions {
  float alpha = 1.0f;
  float beta = 0.0f;  // C is read only when beta != 0
};

// A: f8e4m3 [M, K] in 1 x 128 tiles; B: f8e4m3 [N, K] in 128 x 128 or 1 x 128 tiles; C: f32 or bf16 [M, N].
// Every product of a tile pair is summed in FP32 or wider and scaled by both tiles' scale_inv before it
// joins the running sum (V3's promotion every 128 elements of K). K, M, N need not be multiples of 128.
// Shapes, dtypes or tilings other than these throw a user error naming the operands. Scales in either layout
// (Fp8Tensor::gemm_layout); on the GPU, scales not yet in the GEMM's are relaid at each call.
void fp8_gemm(const Context& ctx, const Fp8Tensor& a, const Fp8Tensor& b, const Tensor& c, const Fp8GemmOptions& opt = {});

// C_e = alpha A_e B_e^T + beta C_e for every e (the routed experts' GEMMs): each result bit-equal to
// fp8_gemm(a[e], b[e], c[e]). On the GPU, experts whose operands are in the GEMM's scale layout with K a multiple
// of 16 (kernels/fp8.hpp's expert forms) run on cuBLASLt spread over the context's side streams, so small GEMMs
// overlap, with descriptors, layouts and algorithms cached per problem; others run as fp8_gemm.
void fp8_gemm_experts(const Context& ctx, std::span<const Fp8Tensor> a, std::span<const Fp8Tensor> b,
                      std::span<const Tensor> c, const Fp8GemmOptions& opt = {});

// How many CUDA fp8_gemm calls this process ran on the plain kernel, cuBLASLt having refused them (inner
// dimension not a multiple of 16, unaligned operands, no algorithm): the GPU tests hold the paths that pad
// for cuBLASLt (the experts' weight gradients) to none. 0 on the CPU.
std::int64_t fp8_gemm_plain_calls();

// Rows [begin, end) of q as a view; begin must start a row tile (any row of 1 x n tiles).
Fp8Tensor fp8_rows(const Fp8Tensor& q, std::int64_t begin, std::int64_t end);

}  // namespace r1::kernels
