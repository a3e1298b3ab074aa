// CPU reference of kernels/elementwise.hpp: what its dispatch (kernels/elementwise.cpp) calls on a CPU context.
#pragma once
#include "kernels/elementwise.hpp"

namespace r1::kernels::cpu {

void axpy(float alpha, const Tensor& x, const Tensor& y);
void scale(float alpha, const Tensor& x);
void fill(const Tensor& x, float value);
void cast(const Tensor& src, const Tensor& dst);

}  // namespace r1::kernels::cpu
