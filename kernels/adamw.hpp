// Fused AdamW step (decoupled weight decay, bias-corrected moments) over one flat f32 parameter tensor,
// with an optional gradient scale (global-norm clipping) and an optional bf16 copy of the result (the
// compute weights of BF16 training).
#pragma once
#include <cmath>

#include "kernels/context.hpp"

namespace r1::kernels {

struct AdamWOptions {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;  // decoupled: p -= lr * weight_decay * p, before the Adam update
  std::int64_t step = 1;      // 1-based count of steps taken including this one (bias correction)
  float grad_scale = 1.0f;    // g *= grad_scale before the moments (e.g. min(1, clip / global_norm))
};

// param, grad, exp_avg, exp_avg_sq: f32, same number of elements (any shape; ZeRO shards are flat).
// param_bf16: undefined, or bf16 with that many elements, set to the updated parameters.
void adamw_step(const Context& ctx, const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                const Tensor& exp_avg_sq, const AdamWOptions& options, const Tensor& param_bf16 = {});

namespace detail {
// Per-step constants, computed once on the host in double.
struct AdamWCoefficients {
  float decay;        // 1 - lr * weight_decay
  float step_size;    // lr / (1 - beta1^step)
  float inv_sqrt_bc2; // 1 / sqrt(1 - beta2^step)
  float beta1, beta2, eps, grad_scale;
};
AdamWCoefficients adamw_coefficients(const AdamWOptions& o);

// One element, shared by the CPU and CUDA versions: p = p * decay - step_size * m / (sqrt(v) / sqrt(bc2) + eps).
R1_HD float adamw_update(const AdamWCoefficients& k, float p, float g, float& m, float& v) {
  g *= k.grad_scale;
  m = k.beta1 * m + (1.0f - k.beta1) * g;
  v = k.beta2 * v + (1.0f - k.beta2) * g * g;
  return p * k.decay - k.step_size * m / (sqrtf(v) * k.inv_sqrt_bc2 + k.eps);
}
}  // namespace detail

namespace cpu {
void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                const detail::AdamWCoefficients& k, const Tensor& param_bf16);
}
#if defined(R1HPC_HAVE_CUDA)
namespace cuda {
void adamw_step(const Context& ctx, const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                const Tensor& exp_avg_sq, const detail::AdamWCoefficients& k, const Tensor& param_bf16);
}
#endif

}  // namespace r1::kernels
