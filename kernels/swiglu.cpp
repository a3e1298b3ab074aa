#include "kernels/swiglu.hpp"

#include "kernels/cpu/fp8.hpp"
#include "kernels/cpu/swiglu.hpp"
#include "kernels/cuda/swiglu.hpp"
#include "kernels/nn_checks.hpp"

namespace r1::kernels {

namespace {
void check_gate_up(const char* op, const Tensor& gate_up, const char* out_name, const Tensor& out) {
  require_float_matrix(op, "gate_up", gate_up);
  R1_REQUIRE(gate_up.dim(1) % 2 == 0, op, ": gate_up ", gate_up.str(), " must have an even number of columns [T, 2H]");
  R1_REQUIRE(out.rank() == 2 && out.dim(0) == gate_up.dim(0) && out.dim(1) == gate_up.dim(1) / 2, op, ": ", out_name, " ",
             out.str(), " must be [T, H] = [", gate_up.dim(0), ", ", gate_up.dim(1) / 2, "] for gate_up ", gate_up.str());
}
}  // namespace

void swiglu_forward(const Context& ctx, const Tensor& gate_up, const Tensor& out) {
  require_all_here(ctx, "swiglu_forward", {{"gate_up", &gate_up}, {"out", &out}});
  check_gate_up("swiglu_forward", gate_up, "out", out);
  R1_REQUIRE(out.dtype() == gate_up.dtype(), "swiglu_forward: out ", out.str(), " must have the dtype of gate_up ",
             gate_up.str());
  if (out.numel() == 0) return;
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::swiglu_forward(ctx, gate_up, out);
#endif
  cpu::swiglu_forward(gate_up, out);
}

void swiglu_forward_fp8(const Context& ctx, const Tensor& gate_up, const Tensor& out, const Fp8Tensor& q) {
  require_all_here(ctx, "swiglu_forward_fp8", {{"gate_up", &gate_up}, {"out", &out}, {"q", &q.data}, {"q scales", &q.scale_inv}});
  check_gate_up("swiglu_forward_fp8", gate_up, "out", out);
  R1_REQUIRE(out.dtype() == gate_up.dtype(), "swiglu_forward_fp8: out ", out.str(), " must have the dtype of gate_up ",
             gate_up.str());
  check_fp8(q, out, "swiglu_forward_fp8");
  R1_REQUIRE(q.block_rows == 1 && q.block_cols == 128, "swiglu_forward_fp8: q must be in 1 x 128 tiles, got ",
             q.block_rows, " x ", q.block_cols);
  if (out.numel() == 0) return;
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::swiglu_forward_fp8(ctx, gate_up, out, q);
#endif
  cpu::swiglu_forward(gate_up, out);  // the reference: the two ops one after the other
  cpu::quantize_fp8(out, q);
}

void swiglu_backward(const Context& ctx, const Tensor& dout, const Tensor& gate_up, const Tensor& dgate_up) {
  require_all_here(ctx, "swiglu_backward", {{"dout", &dout}, {"gate_up", &gate_up}, {"dgate_up", &dgate_up}});
  check_gate_up("swiglu_backward", gate_up, "dout", dout);
  require_float_matrix("swiglu_backward", "dout", dout);
  R1_REQUIRE(dgate_up.shape() == gate_up.shape() && dgate_up.dtype() == dout.dtype(), "swiglu_backward: dgate_up ",
             dgate_up.str(), " must have the shape of gate_up ", gate_up.str(), " and the dtype of dout ", dout.str());
  if (dout.numel() == 0) return;
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::swiglu_backward(ctx, dout, gate_up, dgate_up);
#endif
  cpu::swiglu_backward(dout, gate_up, dgate_up);
}

}  // namespace r1::kernels
