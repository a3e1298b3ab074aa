#include "kernels/rmsnorm.hpp"

#include "kernels/cpu/rmsnorm.hpp"
#include "kernels/cuda/rmsnorm.hpp"
#include "kernels/nn_checks.hpp"

namespace r1::kernels {

namespace {
void check_common(const char* op, const Tensor& x, const Tensor& weight, const Tensor& rstd) {
  require_float_matrix(op, "x", x);
  R1_REQUIRE(x.dim(1) > 0, op, ": x ", x.str(), " must have at least one feature");
  require_vector(op, "weight", weight, DType::f32, x.dim(1), "x", x);
  require_vector(op, "rstd", rstd, DType::f32, x.dim(0), "x", x);
}
}  // namespace

void rmsnorm_forward(const Context& ctx, const Tensor& x, const Tensor& weight, float eps, const Tensor& y,
                     const Tensor& rstd) {
  require_all_here(ctx, "rmsnorm_forward", {{"x", &x}, {"weight", &weight}, {"y", &y}, {"rstd", &rstd}});
  check_common("rmsnorm_forward", x, weight, rstd);
  R1_REQUIRE(y.shape() == x.shape() && y.dtype() == x.dtype(), "rmsnorm_forward: y ", y.str(),
             " must have the shape and dtype of x ", x.str());
  R1_REQUIRE(eps >= 0.0f, "rmsnorm_forward: eps must be >= 0, got ", eps);
  if (x.numel() == 0) return;
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::rmsnorm_forward(ctx, x, weight, eps, y, rstd);
#endif
  cpu::rmsnorm_forward(x, weight, eps, y, rstd);
}

void rmsnorm_backward(const Context& ctx, const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& rstd,
                      const Tensor& dx, const Tensor& dweight) {
  require_all_here(ctx, "rmsnorm_backward",
                   {{"dy", &dy}, {"x", &x}, {"weight", &weight}, {"rstd", &rstd}, {"dx", &dx}, {"dweight", &dweight}});
  check_common("rmsnorm_backward", x, weight, rstd);
  R1_REQUIRE(dy.shape() == x.shape() && is_float(dy.dtype()), "rmsnorm_backward: dy ", dy.str(),
             " must be f32 or bf16 of the shape of x ", x.str());
  R1_REQUIRE(dx.shape() == x.shape() && dx.dtype() == dy.dtype(), "rmsnorm_backward: dx ", dx.str(),
             " must have the shape of x ", x.str(), " and the dtype of dy ", dy.str());
  require_vector("rmsnorm_backward", "dweight", dweight, DType::f32, x.dim(1), "x", x);
  if (x.numel() == 0) return;
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::rmsnorm_backward(ctx, dy, x, weight, rstd, dx, dweight);
#endif
  cpu::rmsnorm_backward(dy, x, weight, rstd, dx, dweight);
}

}  // namespace r1::kernels
