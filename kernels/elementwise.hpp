// Elementwise ops over whole tensors: axpy, scale, fill, dtype cast. Arithmetic in f32.
#pragma once
#include "kernels/context.hpp"

namespace r1::kernels {

void axpy(const Context& ctx, float alpha, const Tensor& x, const Tensor& y);  // y += alpha * x
void scale(const Context& ctx, float alpha, const Tensor& x);                  // x *= alpha
void fill(const Context& ctx, const Tensor& x, float value);
// dst = src converted (f32, bf16, f8e4m3; round to nearest even, fp8 saturating); same element count.
void cast(const Context& ctx, const Tensor& src, const Tensor& dst);

}  // namespace r1::kernels
