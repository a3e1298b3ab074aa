#include "kernels/moe_balance.hpp"

#include "kernels/cpu/moe_balance.hpp"
#include "kernels/cuda/moe_balance.hpp"

namespace r1::kernels {

namespace {
void check_balance(const Context& ctx, const Tensor& scores, const Tensor& expert_idx, const BalanceParams& p,
                   const char* op) {
  require_here(ctx, op, "scores", scores);
  require_here(ctx, op, "expert_idx", expert_idx);
  R1_REQUIRE(scores.rank() == 2 && scores.dtype() == DType::f32, op, ": scores must be f32 [T, E], got ", scores.str());
  R1_REQUIRE(expert_idx.rank() == 2 && expert_idx.dtype() == DType::i32 && expert_idx.dim(0) == scores.dim(0) &&
                 expert_idx.dim(1) >= 1,
             op, ": expert_idx must be i32 [T, k] for scores ", scores.str(), ", got ", expert_idx.str());
  R1_REQUIRE(p.seq_len >= 1 && scores.dim(0) % p.seq_len == 0, op, ": seq_len ", p.seq_len,
             " must divide the token count of scores ", scores.str());
}
}  // namespace

void moe_balance_forward(const Context& ctx, const Tensor& scores, const Tensor& expert_idx, const BalanceParams& p,
                         const Tensor& loss, const Tensor& counts) {
  check_balance(ctx, scores, expert_idx, p, "moe_balance_forward");
  require_here(ctx, "moe_balance_forward", "loss", loss);
  require_here(ctx, "moe_balance_forward", "counts", counts);
  R1_REQUIRE(loss.dtype() == DType::f32 && loss.numel() == 1, "moe_balance_forward: loss must be f32[1], got ", loss.str());
  R1_REQUIRE(counts.dtype() == DType::i32 && counts.shape() == Shape{scores.dim(1)}, "moe_balance_forward: counts must be i32 [",
             scores.dim(1), "] for scores ", scores.str(), ", got ", counts.str());
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::moe_balance_forward(ctx, scores, expert_idx, p, loss, counts);
#endif
  cpu::moe_balance_forward(scores, expert_idx, p, loss, counts);
}

void moe_balance_backward(const Context& ctx, float dloss, const Tensor& scores, const Tensor& expert_idx,
                          const BalanceParams& p, const Tensor& dlogits) {
  check_balance(ctx, scores, expert_idx, p, "moe_balance_backward");
  require_here(ctx, "moe_balance_backward", "dlogits", dlogits);
  R1_REQUIRE(dlogits.dtype() == DType::f32 && dlogits.shape() == scores.shape(), "moe_balance_backward: dlogits ",
             dlogits.str(), " must be f32 and shaped like scores ", scores.str());
  if (scores.numel() == 0) return;
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::moe_balance_backward(ctx, dloss, scores, expert_idx, p, dlogits);
#endif
  cpu::moe_balance_backward(dloss, scores, expert_idx, p, dlogits);
}

void moe_bias_update(const Context& ctx, const Tensor& counts, float gamma, const Tensor& bias) {
  require_here(ctx, "moe_bias_update", "counts", counts);
  require_here(ctx, "moe_bias_update", "bias", bias);
  R1_REQUIRE(counts.dtype() == DType::i32 && counts.rank() == 1 && bias.dtype() == DType::f32 &&
                 bias.shape() == counts.shape(),
             "moe_bias_update: counts must be i32 [E] and bias f32 [E], got counts ", counts.str(), " and bias ", bias.str());
  if (counts.numel() == 0) return;
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::moe_bias_update(ctx, counts, gamma, bias);
#endif
  cpu::moe_bias_update(counts, gamma, bias);
}

}  // namespace r1::kernels
