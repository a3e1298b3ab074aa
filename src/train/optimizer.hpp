// AdamW over a ParamStore (decoupled weight decay, FP32 master weights, moments in FP32 or BF16) on the
// gradients a GradReducer summed, with global gradient-norm clipping, the update of every tensor (or ZeRO-1
// part) in one multi-tensor pass and the parts' all-gather, and the learning-rate schedules (warmup then
// cosine, WSD, or constant).
#pragma once
#include <vector>

#include "config/training.hpp"
#include "model/params.hpp"
#include "train/grad_reducer.hpp"

namespace r1 {

struct LrSchedule {
  using Shape = LrShape;
  Shape shape = Shape::cosine;
  double lr = 3e-4, min_lr = 3e-5;
  std::int64_t warmup = 0;
  std::int64_t decay = 0;  // cosine: steps from the end of warmup to min_lr; wsd: length of the final decay
  std::int64_t total = 0;  // wsd: the last step (the decay ends there)
  // Learning rate of optimizer step `step` (1-based): linear warmup from lr/warmup to lr, then the shape.
  double at(std::int64_t step) const;
  // The deck's [optim] schedule over a run of `steps` optimizer steps (run.max_steps, or the steps of a
  // stage's epochs); decay_steps = 0 decays over what follows the warmup (cosine) or the last fifth (wsd).
  static LrSchedule from_config(const OptimConfig& optim, std::int64_t max_steps);
};

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1, grad_clip = 1.0;
  DType moments = DType::f32;  // storage of exp_avg and exp_avg_sq ([optim] moment_precision): f32 or bf16
  static AdamWConfig from_config(const OptimConfig& optim);
};

class AdamW {
 public:
  // Steps on the gradients `grads` reduces: with ZeRO-1 this rank keeps moments for its part only.
  AdamW(ParamStore& params, const AdamWConfig& config, const GradReducer& grads);
  // Whether this rank holds the first copy of p among its replicas: the copy a checkpoint writes.
  bool first_copy(const Param& p) const { return grads_.first_copy(p); }
  // Global L2 norm of all gradients (one multi-tensor launch over every gradient chunk, one host sync;
  // with groups, one f64 all-reduce over world): every parameter counted exactly once, whichever ranks
  // replicate or shard it. Gradients must be complete (after GradReducer::reduce).
  double grad_norm() const;
  // One step at learning rate `lr`: clips by the global norm (when grad_clip > 0), updates every
  // trainable parameter and its compute copy in one multi-tensor pass. Returns the norm before clipping. A non-finite norm throws
  // Error(ErrorKind::diverged) before anything is updated.
  double step(double lr);
  std::int64_t steps_taken() const { return step_; }
  // This rank's moments in parameter order (undefined for buffers), in config.moments' dtype:
  // parameter-shaped, or with ZeRO-1 the flat part [lo, hi) of the flattened parameter that this rank updates.
  const std::vector<Tensor>& exp_avg() const { return m_; }
  const std::vector<Tensor>& exp_avg_sq() const { return v_; }
  void set_steps_taken(std::int64_t s) { step_ = s; }
  DType moment_dtype() const { return config_.moments; }

  // Checkpointing. Whole parameter-shaped moments, in parameter order (undefined for buffers), saved in the
  // dtype they are kept in.
  struct Moments {
    std::vector<Tensor> exp_avg, exp_avg_sq;
  };
  // For a save: this rank's moments, with ZeRO-1 gathered from the replicas' parts (collective over the
  // replica groups: every rank calls it at the same point).
  Moments gather_moments() const;
  // For a load, not collective: whole tensors of dtype `stored` (the checkpoint's) to read into, holding
  // this rank's current moments (the moments themselves without ZeRO-1 when `stored` is theirs); then
  // keep_loaded() takes this rank's parts back, converted to the dtype they are kept in.
  Moments moments_to_load(DType stored) const;
  void keep_loaded(const Moments& loaded);

 private:
  ParamStore& params_;
  AdamWConfig config_;
  const GradReducer& grads_;
  std::vector<Tensor> m_, v_;  // per parameter (undefined for buffers)
  std::int64_t step_ = 0;
};

}  // namespace r1
