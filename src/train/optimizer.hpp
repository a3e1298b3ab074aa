// AdamW over a ParamStore (decoupled weight decay, FP32 master weights, moments in FP32), global
// gradient-norm clipping, and the learning-rate schedules (warmup then cosine, WSD, or constant).
#pragma once
#include <vector>

#include "model/params.hpp"

namespace r1 {

class Deck;

struct LrSchedule {
  enum class Shape { cosine, wsd, constant };
  Shape shape = Shape::cosine;
  double lr = 3e-4, min_lr = 3e-5;
  std::int64_t warmup = 0;
  std::int64_t decay = 0;  // cosine: steps from the end of warmup to min_lr; wsd: length of the final decay
  std::int64_t total = 0;  // wsd: the last step (the decay ends there)
  // Learning rate of optimizer step `step` (1-based): linear warmup from lr/warmup to lr, then the shape.
  double at(std::int64_t step) const;
  static LrSchedule from_deck(const Deck& deck);
};

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1, grad_clip = 1.0;
  static AdamWConfig from_deck(const Deck& deck);
};

class AdamW {
 public:
  AdamW(ParamStore& params, const AdamWConfig& config);
  // Global L2 norm of all gradients (one host sync). Parameters must have complete gradients (after any
  // data-parallel reduction).
  double grad_norm() const;
  // One step at learning rate `lr`: clips by the global norm (when grad_clip > 0), updates every
  // trainable parameter and its compute copy. Returns the norm before clipping.
  double step(double lr);
  std::int64_t steps_taken() const { return step_; }
  // The moments, in parameter order (checkpointing).
  const std::vector<Tensor>& exp_avg() const { return m_; }
  const std::vector<Tensor>& exp_avg_sq() const { return v_; }
  void set_steps_taken(std::int64_t s) { step_ = s; }

 private:
  ParamStore& params_;
  AdamWConfig config_;
  std::vector<Tensor> m_, v_;  // per parameter (undefined for buffers)
  std::int64_t step_ = 0;
};

}  // namespace r1
