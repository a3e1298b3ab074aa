#include "kernels/adamw.hpp"

#include "kernels/cpu/adamw.hpp"
#include "kernels/cuda/adamw.hpp"
#include "kernels/nn_checks.hpp"

namespace r1::kernels {

namespace detail {
AdamWCoefficients adamw_coefficients(const AdamWOptions& o) {
  const double bc1 = 1.0 - std::pow(static_cast<double>(o.beta1), static_cast<double>(o.step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(o.beta2), static_cast<double>(o.step));
  return {static_cast<float>(1.0 - static_cast<double>(o.lr) * o.weight_decay), static_cast<float>(o.lr / bc1),
          static_cast<float>(1.0 / std::sqrt(bc2)), o.beta1, o.beta2, o.eps, o.grad_scale};
}
}  // namespace detail

void adamw_step(const Context& ctx, const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                const Tensor& exp_avg_sq, const AdamWOptions& o, const Tensor& param_bf16) {
  require_all_here(ctx, "adamw_step",
                   {{"param", &param}, {"grad", &grad}, {"exp_avg", &exp_avg}, {"exp_avg_sq", &exp_avg_sq}});
  for (const auto& [name, t] : {NamedTensor{"param", &param}, NamedTensor{"grad", &grad},
                                NamedTensor{"exp_avg", &exp_avg}, NamedTensor{"exp_avg_sq", &exp_avg_sq}})
    R1_REQUIRE(t->dtype() == DType::f32 && t->numel() == param.numel(), "adamw_step: ", name, " ", t->str(),
               " must be f32 with the element count of param ", param.str());
  if (param_bf16.defined()) {
    require_here(ctx, "adamw_step", "param_bf16", param_bf16);
    R1_REQUIRE(param_bf16.dtype() == DType::bf16 && param_bf16.numel() == param.numel(), "adamw_step: param_bf16 ",
               param_bf16.str(), " must be bf16 with the element count of param ", param.str());
  }
  R1_REQUIRE(o.step >= 1, "adamw_step: step must be >= 1 (it counts this step), got ", o.step);
  R1_REQUIRE(o.beta1 >= 0.0f && o.beta1 < 1.0f && o.beta2 >= 0.0f && o.beta2 < 1.0f && o.eps > 0.0f,
             "adamw_step: need 0 <= beta1, beta2 < 1 and eps > 0, got beta1 ", o.beta1, ", beta2 ", o.beta2, ", eps ",
             o.eps);
  if (param.numel() == 0) return;
  const detail::AdamWCoefficients k = detail::adamw_coefficients(o);
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::adamw_step(ctx, param, grad, exp_avg, exp_avg_sq, k, param_bf16);
#endif
  cpu::adamw_step(param, grad, exp_avg, exp_avg_sq, k, param_bf16);
}

}  // namespace r1::kernels
