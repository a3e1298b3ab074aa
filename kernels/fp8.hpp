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
};

// An empty block-scaled tensor in ctx's memory.
Fp8Tensor make_fp8(const Context& ctx, std::int64_t rows, std::int64_t cols, int block_rows, int block_cols);

// scale_inv = max|x| over the tile / 448 (1 for an all-zero tile); data = round_to_e4m3(x / scale_inv).
void quantize_fp8(const Context& ctx, const Tensor& x, const Fp8Tensor& out);
// y = data * scale_inv (y: f32 or bf16 [rows, cols]).
void dequantize_fp8(const Context& ctx, const Fp8Tensor& q, const Tensor& y);

void check_fp8(const Fp8Tensor& q, const Tensor& dense, const char* op);  // shapes and dtypes agree

}  // namespace r1::kernels
