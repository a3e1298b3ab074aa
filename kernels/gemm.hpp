// GEMM: C = alpha * op(A) @ op(B) + beta * C, row-major, FP32 accumulation, optionally batched.
#pragma once
#include <cstdint>
#include <span>

#include "kernels/context.hpp"

namespace r1::kernels {

struct GemmOptions {
  bool trans_a = false;     // A is stored [K, M] (per batch) and used transposed
  bool trans_b = false;     // B is stored [N, K] and used transposed (the usual weight layout)
  float alpha = 1.0f;
  float beta = 0.0f;        // C is read only when beta != 0
  bool allow_tf32 = false;  // FP32 inputs on GPU: TF32 tensor cores instead of exact FP32 FMA
};

// A problem after validation: sizes, batch and per-operand batch strides (elements; 0 = broadcast).
struct GemmProblem {
  std::int64_t m = 0, n = 0, k = 0, batch = 1;
  std::int64_t stride_a = 0, stride_b = 0, stride_c = 0;
};

// A: [M, K] or [batch, M, K]; B: [K, N] or [batch, K, N]; C: [M, N] or [batch, M, N] (before transposes).
// A and B share a dtype, f32 or bf16; C is f32 or bf16. A 2-D operand is shared by every batch.
// Mismatched shapes or dtypes throw a user error naming both shapes.
void gemm(const Context& ctx, const Tensor& a, const Tensor& b, const Tensor& c, const GemmOptions& opt = {});

GemmProblem check_gemm(const Tensor& a, const Tensor& b, const Tensor& c, const GemmOptions& opt);

}  // namespace r1::kernels
