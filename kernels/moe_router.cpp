#include "kernels/moe_router.hpp"

#include "kernels/cpu/moe_router.hpp"
#include "kernels/cuda/moe_router.hpp"

namespace r1::kernels {

const char* score_func_name(ScoreFunc f) { return f == ScoreFunc::sigmoid ? "sigmoid" : "softmax"; }

void check_router(const RouterParams& p, const Tensor& scores, const Tensor& expert_idx, const Tensor& gates,
                  const char* op) {
  R1_REQUIRE(scores.rank() == 2 && scores.dtype() == DType::f32, op, ": scores must be f32 [T, E], got ", scores.str());
  const std::int64_t t = scores.dim(0), e = scores.dim(1);
  R1_REQUIRE(e >= 1 && e <= (1 << 20), op, ": the expert count E = ", e, " must be in [1, 2^20] (scores ", scores.str(), ")");
  R1_REQUIRE(p.n_groups >= 1 && p.n_groups <= 64 && e % p.n_groups == 0, op, ": n_groups = ", p.n_groups,
             " must be in [1, 64] and divide the expert count E = ", e);
  R1_REQUIRE(p.topk_groups >= 1 && p.topk_groups <= p.n_groups, op, ": topk_groups = ", p.topk_groups,
             " must be in [1, n_groups = ", p.n_groups, "]");
  const std::int64_t reachable = e / p.n_groups * p.topk_groups;
  R1_REQUIRE(p.top_k >= 1 && p.top_k <= reachable, op, ": top_k = ", p.top_k, " must be in [1, ", reachable,
             "] (the experts of topk_groups = ", p.topk_groups, " of ", p.n_groups, " groups of ", e, " experts)");
  const Shape tk{t, p.top_k};
  R1_REQUIRE(expert_idx.dtype() == DType::i32 && expert_idx.shape() == tk, op, ": expert_idx must be i32 ", tk.str(),
             " for scores ", scores.str(), " and top_k ", p.top_k, ", got ", expert_idx.str());
  R1_REQUIRE(gates.dtype() == DType::f32 && gates.shape() == tk, op, ": gates must be f32 ", tk.str(), " for scores ",
             scores.str(), " and top_k ", p.top_k, ", got ", gates.str());
}

namespace {
void route(const Context& ctx, const Tensor& logits, const Tensor& bias, const RouterParams& p, const Tensor& scores,
           const Tensor& expert_idx, const Tensor& gates, bool replay, const char* op) {
  require_here(ctx, op, "logits", logits);
  require_here(ctx, op, "scores", scores);
  require_here(ctx, op, "expert_idx", expert_idx);
  require_here(ctx, op, "gates", gates);
  check_router(p, scores, expert_idx, gates, op);
  R1_REQUIRE(logits.dtype() == DType::f32 && logits.shape() == scores.shape(), op, ": logits ", logits.str(),
             " must be f32 and shaped like scores ", scores.str());
  if (bias.defined()) {
    require_here(ctx, op, "bias", bias);
    R1_REQUIRE(bias.dtype() == DType::f32 && bias.shape() == Shape{scores.dim(1)}, op, ": bias must be f32 [",
               scores.dim(1), "] for logits ", logits.str(), ", got ", bias.str());
  }
  if (scores.numel() == 0) return;
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::moe_router_forward(ctx, logits, bias, p, scores, expert_idx, gates, replay);
#endif
  if (replay) {  // on the host the replayed ids are checked; on the GPU the caller vouches for them
    const std::int64_t e = scores.dim(1);
    const std::int32_t* idx = expert_idx.data<std::int32_t>();
    for (std::int64_t r = 0; r < scores.dim(0); ++r) {
      const std::int32_t* row = idx + r * p.top_k;
      if (row[0] < 0) continue;
      for (int j = 0; j < p.top_k; ++j)
        R1_REQUIRE(row[j] >= 0 && row[j] < e, op, ": token ", r, " replays expert ", row[j], " of ", e);
    }
  }
  cpu::moe_router_forward(logits, bias, p, scores, expert_idx, gates, replay);
}
}  // namespace

void moe_router_forward(const Context& ctx, const Tensor& logits, const Tensor& bias, const RouterParams& p,
                        const Tensor& scores, const Tensor& expert_idx, const Tensor& gates) {
  route(ctx, logits, bias, p, scores, expert_idx, gates, /*replay=*/false, "moe_router_forward");
}

void moe_router_replay(const Context& ctx, const Tensor& logits, const Tensor& bias, const RouterParams& p,
                       const Tensor& scores, const Tensor& expert_idx, const Tensor& gates) {
  route(ctx, logits, bias, p, scores, expert_idx, gates, /*replay=*/true, "moe_router_replay");
}

void moe_router_backward(const Context& ctx, const Tensor& dgates, const Tensor& scores, const Tensor& expert_idx,
                         const Tensor& gates, const RouterParams& p, const Tensor& dlogits) {
  require_here(ctx, "moe_router_backward", "dgates", dgates);
  require_here(ctx, "moe_router_backward", "scores", scores);
  require_here(ctx, "moe_router_backward", "expert_idx", expert_idx);
  require_here(ctx, "moe_router_backward", "gates", gates);
  require_here(ctx, "moe_router_backward", "dlogits", dlogits);
  check_router(p, scores, expert_idx, gates, "moe_router_backward");
  R1_REQUIRE(dgates.dtype() == DType::f32 && dgates.shape() == gates.shape(), "moe_router_backward: dgates ",
             dgates.str(), " must be f32 and shaped like gates ", gates.str());
  R1_REQUIRE(dlogits.dtype() == DType::f32 && dlogits.shape() == scores.shape(), "moe_router_backward: dlogits ",
             dlogits.str(), " must be f32 and shaped like scores ", scores.str());
  if (scores.numel() == 0) return;
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::moe_router_backward(ctx, dgates, scores, expert_idx, gates, p, dlogits);
#endif
  cpu::moe_router_backward(dgates, scores, expert_idx, gates, p, dlogits);
}

}  // namespace r1::kernels
