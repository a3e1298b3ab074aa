// CPU reference of kernels/fp8.hpp: what its dispatch (kernels/fp8.cpp) calls on a CPU context.
#pragma once
#include "kernels/fp8.hpp"

namespace r1::kernels::cpu {

void quantize_fp8(const Tensor& x, const Fp8Tensor& out);
void quantize_fp8_transposed(const Tensor& x, const Fp8Tensor& out);
void dequantize_fp8(const Fp8Tensor& q, const Tensor& y);

void gather_fp8_rows(const Tensor& src, const Tensor& rows, const Tensor& dst);  // data bytes only

}  // namespace r1::kernels::cpu
