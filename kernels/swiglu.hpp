// SwiGLU activation of the fused gate/up projection (DeepSeek-V3 MLPs and experts): out = silu(gate) * up.
#pragma once
#include "kernels/context.hpp"
#include "kernels/fp8.hpp"

namespace r1::kernels {

// gate_up: [T, 2H] f32 or bf16, columns [0, H) the gate and [H, 2H) the up projection (one GEMM makes
// both); out: [T, H] of gate_up's dtype. Math in f32.
void swiglu_forward(const Context& ctx, const Tensor& gate_up, const Tensor& out);
// swiglu_forward, with out also quantised into q (1 x 128 tiles, q.pow2_scales as quantize_fp8) in the same
// pass: the FP8 down projection's input, as DeepSeek-V3 fuses it. q equals quantize_fp8(out) bit for bit.
void swiglu_forward_fp8(const Context& ctx, const Tensor& gate_up, const Tensor& out, const Fp8Tensor& q);
// dout: [T, H], dgate_up: [T, 2H], one f32|bf16 dtype (which may differ from gate_up's).
// dgate = dout * up * silu'(gate), dup = dout * silu(gate). dgate_up may alias gate_up when the
// dtypes agree (in-place backward): each element pair is read before it is written.
void swiglu_backward(const Context& ctx, const Tensor& dout, const Tensor& gate_up, const Tensor& dgate_up);

}  // namespace r1::kernels
