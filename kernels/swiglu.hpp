// SwiGLU activation of the fused gate/up projection (DeepSeek-V3 MLPs and experts): out = silu(gate) * up.
#pragma once
#include <cmath>

#include "kernels/context.hpp"

namespace r1::kernels {

// gate_up: [T, 2H] f32 or bf16, columns [0, H) the gate and [H, 2H) the up projection (one GEMM makes
// both); out: [T, H] of gate_up's dtype. Math in f32.
void swiglu_forward(const Context& ctx, const Tensor& gate_up, const Tensor& out);
// dout: [T, H], dgate_up: [T, 2H], one f32|bf16 dtype (which may differ from gate_up's).
// dgate = dout * up * silu'(gate), dup = dout * silu(gate). dgate_up may alias gate_up when the
// dtypes agree (in-place backward): each element pair is read before it is written.
void swiglu_backward(const Context& ctx, const Tensor& dout, const Tensor& gate_up, const Tensor& dgate_up);

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

namespace cpu {
void swiglu_forward(const Tensor& gate_up, const Tensor& out);
void swiglu_backward(const Tensor& dout, const Tensor& gate_up, const Tensor& dgate_up);
}  // namespace cpu
#if defined(R1HPC_HAVE_CUDA)
namespace cuda {
void swiglu_forward(const Context& ctx, const Tensor& gate_up, const Tensor& out);
void swiglu_backward(const Context& ctx, const Tensor& dout, const Tensor& gate_up, const Tensor& dgate_up);
}  // namespace cuda
#endif

}  // namespace r1::kernels
