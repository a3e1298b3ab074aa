#include "kernels/cross_entropy.hpp"

#include "kernels/cpu/cross_entropy.hpp"
#include "kernels/cuda/cross_entropy.hpp"
#include "kernels/nn_checks.hpp"

namespace r1::kernels {

namespace {
void check_common(const char* op, const Tensor& logits, const Tensor& targets, const Tensor& lse) {
  require_float_matrix(op, "logits", logits);
  R1_REQUIRE(logits.dim(1) > 0, op, ": logits ", logits.str(), " must have a non-empty vocabulary");
  require_vector(op, "targets", targets, DType::i32, logits.dim(0), "logits", logits);
  require_vector(op, "lse", lse, DType::f32, logits.dim(0), "logits", logits);
  if (!targets.on_host()) return;  // device targets are the caller's to validate (see the header)
  const std::int32_t* pt = targets.data<std::int32_t>();
  for (std::int64_t t = 0; t < targets.numel(); ++t)
    R1_REQUIRE(pt[t] >= kTargetElsewhere && pt[t] < logits.dim(1), op, ": targets[", t, "] = ", pt[t],
               " is neither -1 (ignored), ", kTargetElsewhere, " (elsewhere) nor a column of logits ", logits.str());
}
}  // namespace

void cross_entropy_forward(const Context& ctx, const Tensor& logits, const Tensor& targets, const Tensor& losses,
                           const Tensor& lse) {
  require_all_here(ctx, "cross_entropy_forward",
                   {{"logits", &logits}, {"targets", &targets}, {"losses", &losses}, {"lse", &lse}});
  check_common("cross_entropy_forward", logits, targets, lse);
  require_vector("cross_entropy_forward", "losses", losses, DType::f32, logits.dim(0), "logits", logits);
  if (logits.dim(0) == 0) return;
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::cross_entropy_forward(ctx, logits, targets, losses, lse);
#endif
  cpu::cross_entropy_forward(logits, targets, losses, lse);
}

void cross_entropy_backward(const Context& ctx, const Tensor& logits, const Tensor& targets, const Tensor& lse,
                            const Tensor& dloss, const Tensor& dlogits) {
  require_all_here(ctx, "cross_entropy_backward",
                   {{"logits", &logits}, {"targets", &targets}, {"lse", &lse}, {"dloss", &dloss}, {"dlogits", &dlogits}});
  check_common("cross_entropy_backward", logits, targets, lse);
  require_vector("cross_entropy_backward", "dloss", dloss, DType::f32, logits.dim(0), "logits", logits);
  R1_REQUIRE(dlogits.shape() == logits.shape() && dlogits.dtype() == logits.dtype(), "cross_entropy_backward: dlogits ",
             dlogits.str(), " must have the shape and dtype of logits ", logits.str());
  if (logits.dim(0) == 0) return;
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::cross_entropy_backward(ctx, logits, targets, lse, dloss, dlogits);
#endif
  cpu::cross_entropy_backward(logits, targets, lse, dloss, dlogits);
}

}  // namespace r1::kernels
