// CUDA version of kernels/elementwise.hpp for its dispatch, defined in cuda/elementwise.cu (CUDA builds only).
#pragma once
#include "kernels/elementwise.hpp"

namespace r1::kernels::cuda {

void axpy(const Context& ctx, float alpha, const Tensor& x, const Tensor& y);
void scale(const Context& ctx, float alpha, const Tensor& x);
void fill(const Context& ctx, const Tensor& x, float value);
void cast(const Context& ctx, const Tensor& src, const Tensor& dst);

}  // namespace r1::kernels::cuda
