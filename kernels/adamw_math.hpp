// The AdamW update of one element and its per-step constants, shared by the CPU reference and the CUDA kernel.
#pragma once
#include <cmath>

#include "kernels/adamw.hpp"

namespace r1::kernels {

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

}  // namespace r1::kernels
