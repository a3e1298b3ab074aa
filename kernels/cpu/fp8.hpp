// CPU reference of kernels/fp8.hpp: what its dispatch (kernels/fp8.cpp) calls on a CPU context.
#pragma once
#include "kernels/fp8.hpp"

namespace r1::kernels::cpu {

void quantize_fp8(const Tensor& x, const Fp8Tensor& out);
void quantize_fp8_transposed(const Tensor& x, const Fp8Tensor& out);
void dequantize_fp8(const Fp8Tensor& q, const Tensor& y);
// Scales s [row tiles, column tiles] of each group into out in the GEMM's layout.
void relayout_fp8_scales(const Tensor& s, std::span<const Fp8Group> groups, bool blocks, const Tensor& out);
// Every group's operand of x quantised in 1 x 128 tiles, its scales in the GEMM's layout (columns: transposed).
void quantize_fp8_groups(const Tensor& x, std::span<const Fp8Group> groups, bool columns, bool pow2, const Tensor& data,
                         const Tensor& scales);

void gather_fp8_rows(const Tensor& src, const Tensor& rows, const Tensor& dst);  // data bytes only

}  // namespace r1::kernels::cpu
