// Fused AdamW step (decoupled weight decay, bias-corrected moments) over one flat f32 parameter tensor,
// with an optional gradient scale (global-norm clipping) and an optional bf16 copy of the result (the
// compute weights of BF16 training).
#pragma once
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

}  // namespace r1::kernels
