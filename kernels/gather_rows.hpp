// Rows gathered by index, dst[i] = src[rows[i]], copied exactly: the KV cache rows of the sequences that go
// on decoding, the last token of each prompt before the output head.
#pragma once
#include "kernels/context.hpp"

namespace r1::kernels {

// src [N, ...] and dst [M, ...]: f32 or bf16, one dtype, the same shape past the first dimension; rows:
// i32 [M], each in [0, N) (a row may be gathered more than once). Copies move bits. Rows are checked on the
// CPU; on the GPU the caller validates them (an out-of-range row gives a NaN row, never an out-of-bounds
// read).
void gather_rows(const Context& ctx, const Tensor& src, const Tensor& rows, const Tensor& dst);

}  // namespace r1::kernels
