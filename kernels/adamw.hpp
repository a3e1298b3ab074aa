// Fused AdamW step (decoupled weight decay, bias-corrected moments) over many flat f32 parameter tensors in
// one pass (a multi-tensor apply: one launch over a device table of the tensors), with an optional gradient
// scale (global-norm clipping), an optional bf16 copy of each result (the compute weights of BF16 training),
// and the moments kept in f32 or bf16 (DeepSeek-V3: math in f32, rounded to nearest even on store).
#pragma once
#include <span>

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

// One tensor of a multi-tensor step. param, grad: f32; exp_avg, exp_avg_sq: f32 or bf16 (every tensor of a
// step alike); all the same number of elements (any shape; ZeRO shards are flat). param_bf16: undefined, or
// bf16 with that many elements, set to the updated parameters. decay false: no weight decay on this tensor.
struct AdamWTensor {
  Tensor param, grad, exp_avg, exp_avg_sq, param_bf16;
  bool decay = true;
};

// Updates every tensor of `tensors` (its weight decay options.weight_decay or none), in one launch on a GPU.
void adamw_multi_step(const Context& ctx, std::span<const AdamWTensor> tensors, const AdamWOptions& options);

// One tensor: adamw_multi_step of {param, grad, exp_avg, exp_avg_sq, param_bf16} with decay.
void adamw_step(const Context& ctx, const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                const Tensor& exp_avg_sq, const AdamWOptions& options, const Tensor& param_bf16 = {});

}  // namespace r1::kernels
