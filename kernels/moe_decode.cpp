#include "kernels/moe_decode.hpp"

#include "kernels/cpu/moe_decode.hpp"
#include "kernels/cuda/moe_decode.hpp"
#include "kernels/nn_checks.hpp"

namespace r1::kernels {

void moe_decode_experts(const Context& ctx, const Tensor& x, const Tensor& expert_idx, const Tensor& gates,
                        const Tensor& gate_up, const Tensor& down, const Tensor& h, const Tensor& out) {
  const char* op = "moe_decode_experts";
  require_all_here(ctx, op, {{"x", &x}, {"expert_idx", &expert_idx}, {"gates", &gates}, {"gate_up", &gate_up},
                             {"down", &down}, {"h", &h}, {"out", &out}});
  require_float_matrix(op, "x", x);
  const std::int64_t t = x.dim(0), d = x.dim(1);
  R1_REQUIRE(expert_idx.rank() == 2 && expert_idx.dim(0) == t && expert_idx.dtype() == DType::i32, op, ": expert_idx ",
             expert_idx.str(), " must be i32 [T, k] with T = ", t, " (x ", x.str(), ")");
  const std::int64_t k = expert_idx.dim(1);
  R1_REQUIRE(gates.dtype() == DType::f32 && gates.shape() == expert_idx.shape(), op, ": gates ", gates.str(),
             " must be f32 shaped like expert_idx ", expert_idx.str());
  R1_REQUIRE(gate_up.rank() == 3 && gate_up.dim(2) == d && gate_up.dim(1) % 2 == 0 && gate_up.dtype() == x.dtype(), op,
             ": gate_up ", gate_up.str(), " must be [E, 2I, ", d, "] of x's dtype (x ", x.str(), ")");
  const std::int64_t e = gate_up.dim(0), inter = gate_up.dim(1) / 2;
  R1_REQUIRE(down.shape() == Shape({e, d, inter}) && down.dtype() == x.dtype(), op, ": down ", down.str(), " must be [",
             e, ", ", d, ", ", inter, "] of x's dtype for gate_up ", gate_up.str());
  R1_REQUIRE(h.shape() == Shape({t * k, inter}) && h.dtype() == x.dtype(), op, ": h ", h.str(), " must be [", t * k,
             ", ", inter, "] of x's dtype");
  R1_REQUIRE(out.shape() == x.shape() && out.dtype() == x.dtype(), op, ": out ", out.str(), " must be shaped like x ",
             x.str());
  if (out.numel() == 0) return;
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::moe_decode_experts(ctx, x, expert_idx, gates, gate_up, down, h, out);
#endif
  cpu::moe_decode_experts(x, expert_idx, gates, gate_up, down, h, out);
}

}  // namespace r1::kernels
