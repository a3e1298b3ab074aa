// CUDA version of kernels/fp8.hpp for its dispatch, defined in cuda/fp8.cu (CUDA builds only).
#pragma once
#include "kernels/fp8.hpp"

namespace r1::kernels::cuda {

void quantize_fp8(const Context& ctx, const Tensor& x, const Fp8Tensor& out);
void quantize_fp8_transposed(const Context& ctx, const Tensor& x, const Fp8Tensor& out);
void dequantize_fp8(const Context& ctx, const Fp8Tensor& q, const Tensor& y);
void relayout_fp8_scales(const Context& ctx, const Tensor& s, std::span<const Fp8Group> groups, bool blocks,
                         const Tensor& out);
void quantize_fp8_groups(const Context& ctx, const Tensor& x, std::span<const Fp8Group> groups, bool columns, bool pow2,
                         const Tensor& data, const Tensor& scales);

void gather_fp8_rows(const Context& ctx, const Tensor& src, const Tensor& rows, const Tensor& dst);

}  // namespace r1::kernels::cuda
