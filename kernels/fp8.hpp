// FP8 (E4M3) block-scaled tensors as DeepSeek-V3 stores and trains them: a 2-D tensor split into
// (block_rows x block_cols) tiles, each with one f32 `scale_inv` such that x ~= fp8 * scale_inv
// (128 x 128 for weights, 1 x 128 for activations; the last tiles of a dimension may be partial).
#pragma once
#include "kernels/context.hpp"

namespace r1::kernels {

struct Fp8Tensor {
  Tensor data;       // f8e4m3 [rows, cols]
  Tensor scale_inv;  // f32 [ceil(rows / block_rows), ceil(cols / block_cols)]
  int block_rows = 128;
  int block_cols = 128;
  bool pow2_scales = false;  // quantize_fp8 rounds each scale_inv up to a power of two ([train] fp8_scale = pow2)
};

// A tile's scale_inv from its max-abs: amax / 448 (1 for an all-zero tile), or with pow2 the power of two at
// or above it, so that scaling is exact in any precision (DeepSeek-V3's option, Transformer Engine's default).
R1_HD float fp8_scale_inv(float amax, bool pow2) {
  if (!(amax > 0.0f)) return 1.0f;
  const float s = amax / kF8E4M3Max;
  if (!pow2) return s;
  int e;
  const float m = frexpf(s, &e);  // s = m 2^e, m in [0.5, 1)
  return ldexpf(1.0f, m == 0.5f ? e - 1 : e);
}

// An empty block-scaled tensor in ctx's memory.
Fp8Tensor make_fp8(const Context& ctx, std::int64_t rows, std::int64_t cols, int block_rows, int block_cols);

// scale_inv = fp8_scale_inv(max|x| over the tile, out.pow2_scales); data = round_to_e4m3(x / scale_inv).
void quantize_fp8(const Context& ctx, const Tensor& x, const Fp8Tensor& out);
// out = quantise(x^T) in one pass: x [R, C] (f32 or bf16), out [C, R] in out's tiles (over the transposed
// matrix). 1 x 128 tiles of x^T are 128 x 1 tiles of x: the weight gradient dW = dy^T x takes both dy and x
// quantised along the token dimension this way; 128 x 128 blocks give a weight's transposed copy for the
// input gradient dx = dy W, the same blocks as quantise(W) transposed.
void quantize_fp8_transposed(const Context& ctx, const Tensor& x, const Fp8Tensor& out);

// y = data * scale_inv (y: f32 or bf16 [rows, cols]).
void dequantize_fp8(const Context& ctx, const Fp8Tensor& q, const Tensor& y);

// dst rows = src rows[i] (data and scales copied exactly): the expert-parallel dispatch regroups FP8 tokens so.
// src and dst in 1 x n tiles (one scale row per data row), of one tiling and width; rows: i32 [M] in [0, N),
// checked on the CPU (on the GPU the caller's).
void gather_fp8_rows(const Context& ctx, const Fp8Tensor& src, const Tensor& rows, const Fp8Tensor& dst);

void check_fp8(const Fp8Tensor& q, const Tensor& dense, const char* op);  // shapes and dtypes agree

}  // namespace r1::kernels
