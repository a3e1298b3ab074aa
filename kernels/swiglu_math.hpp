// SwiGLU of one (gate, up) pair and its gradient, shared by the CPU and CUDA versions of swiglu and moe_decode.
#pragma once
#include <cmath>

#include "core/dtype.hpp"

namespace r1::kernels {

namespace detail {
// One (gate, up) pair; shared by the CPU and CUDA versions so that both compute the same f32 expressions.
R1_HD float sigmoid(float g) { return 1.0f / (1.0f + expf(-g)); }
R1_HD float swiglu(float g, float u) { return g * sigmoid(g) * u; }
R1_HD void swiglu_grad(float g, float u, float dout, float& dg, float& du) {
  const float s = sigmoid(g);
  dg = dout * u * (s * (1.0f + g * (1.0f - s)));  // d silu/dg = s (1 + g (1 - s))
  du = dout * g * s;
}
}  // namespace detail

}  // namespace r1::kernels
