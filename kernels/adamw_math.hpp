// The AdamW update of one element and its per-step constants, shared by the CPU reference and the CUDA kernel.
#pragma once
#include <cmath>

#include "kernels/adamw.hpp"

namespace r1::kernels {

namespace detail {
// Per-step constants, computed once on the host in double.
struct AdamWCoefficients {
  float decay;        // 1 - lr * weight_decay (per tensor: 1 where a tensor has no weight decay)
  float step_size;    // lr / (1 - beta1^step)
  float inv_sqrt_bc2; // 1 / sqrt(1 - beta2^step)
  float beta1, beta2, eps, grad_scale;
};
AdamWCoefficients adamw_coefficients(const AdamWOptions& o);

// One element, shared by the CPU and CUDA versions: p = p * decay - step_size * m / (sqrt(v) / sqrt(bc2) + eps).
// m and v are f32 here whatever their storage: a bf16 moment is widened on load and rounded on store.
R1_HD float adamw_update(const AdamWCoefficients& k, float decay, float p, float g, float& m, float& v) {
  g *= k.grad_scale;
  m = k.beta1 * m + (1.0f - k.beta1) * g;
  v = k.beta2 * v + (1.0f - k.beta2) * g * g;
  return p * decay - k.step_size * m / (sqrtf(v) * k.inv_sqrt_bc2 + k.eps);
}

// The kernels' table: one row per tensor, its weight-decay factor resolved on the host.
struct AdamWRow {
  float* p;
  const float* g;
  void* m;  // f32 or bf16, as the step's moment dtype
  void* v;
  bf16* pb;  // null: no compute copy
  std::int64_t n;
  float decay;
};
}  // namespace detail

}  // namespace r1::kernels
