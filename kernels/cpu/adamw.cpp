// CPU reference AdamW: one pass over the elements, the update shared with CUDA (kernels/adamw_math.hpp).
#include "kernels/adamw_math.hpp"
#include "kernels/cpu/adamw.hpp"

namespace r1::kernels::cpu {

void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                const detail::AdamWCoefficients& k, const Tensor& param_bf16) {
  const std::int64_t n = param.numel();
  float* p = param.data<float>();
  const float* g = grad.data<float>();
  float* m = exp_avg.data<float>();
  float* v = exp_avg_sq.data<float>();
  bf16* pb = param_bf16.defined() ? param_bf16.data<bf16>() : nullptr;
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < n; ++i) {
    p[i] = detail::adamw_update(k, p[i], g[i], m[i], v[i]);
    if (pb) pb[i] = to_bf16(p[i]);
  }
}

}  // namespace r1::kernels::cpu
