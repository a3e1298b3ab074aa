#include "kernels/adamw.hpp"

#include <cmath>
#include <string>
#include <tuple>
#include <vector>

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

namespace {
// Checks tensor i of a step (its moments in `moments`, the first tensor's) and returns its table row.
detail::AdamWRow checked_row(const Context& ctx, const AdamWTensor& t, std::size_t i, DType moments, float decay) {
  const std::string at = "adamw_step: tensor " + std::to_string(i) + ": ";
  require_all_here(ctx, "adamw_step",
                   {{"param", &t.param}, {"grad", &t.grad}, {"exp_avg", &t.exp_avg}, {"exp_avg_sq", &t.exp_avg_sq}});
  const std::int64_t n = t.param.numel();
  for (const auto& [name, x, dt] : {std::tuple{"param", &t.param, DType::f32}, std::tuple{"grad", &t.grad, DType::f32},
                                    std::tuple{"exp_avg", &t.exp_avg, moments}, std::tuple{"exp_avg_sq", &t.exp_avg_sq, moments}})
    R1_REQUIRE(x->dtype() == dt && x->numel() == n, at, name, " ", x->str(), " must be ", dtype_name(dt),
               " with the element count of param ", t.param.str());
  if (t.param_bf16.defined()) {
    require_here(ctx, "adamw_step", "param_bf16", t.param_bf16);
    R1_REQUIRE(t.param_bf16.dtype() == DType::bf16 && t.param_bf16.numel() == n, at, "param_bf16 ", t.param_bf16.str(),
               " must be bf16 with the element count of param ", t.param.str());
  }
  return {t.param.data<float>(), t.grad.data<float>(), t.exp_avg.raw(), t.exp_avg_sq.raw(),
          t.param_bf16.defined() ? t.param_bf16.data<bf16>() : nullptr, n, decay};
}
}  // namespace

void adamw_multi_step(const Context& ctx, std::span<const AdamWTensor> tensors, const AdamWOptions& o) {
  R1_REQUIRE(o.step >= 1, "adamw_step: step must be >= 1 (it counts this step), got ", o.step);
  R1_REQUIRE(o.beta1 >= 0.0f && o.beta1 < 1.0f && o.beta2 >= 0.0f && o.beta2 < 1.0f && o.eps > 0.0f,
             "adamw_step: need 0 <= beta1, beta2 < 1 and eps > 0, got beta1 ", o.beta1, ", beta2 ", o.beta2, ", eps ",
             o.eps);
  if (tensors.empty()) return;
  const DType moments = tensors[0].exp_avg.dtype();
  R1_REQUIRE(moments == DType::f32 || moments == DType::bf16, "adamw_step: moments must be f32 or bf16, got ",
             tensors[0].exp_avg.str());
  const detail::AdamWCoefficients k = detail::adamw_coefficients(o);
  std::vector<detail::AdamWRow> rows;
  rows.reserve(tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    detail::AdamWRow r = checked_row(ctx, tensors[i], i, moments, tensors[i].decay ? k.decay : 1.0f);
    if (r.n > 0) rows.push_back(r);
  }
  if (rows.empty()) return;
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::adamw_multi_step(ctx, rows, moments, k);
#endif
  cpu::adamw_multi_step(rows, moments, k);
}

void adamw_step(const Context& ctx, const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                const Tensor& exp_avg_sq, const AdamWOptions& o, const Tensor& param_bf16) {
  const AdamWTensor t{param, grad, exp_avg, exp_avg_sq, param_bf16, true};
  adamw_multi_step(ctx, {&t, 1}, o);
}

}  // namespace r1::kernels
