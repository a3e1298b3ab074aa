// AdamW over a ParamStore (decoupled weight decay, FP32 master weights, moments in FP32), the gradient
// reduction over data/expert-data-parallel replicas with optional ZeRO-1 sharding, global gradient-norm
// clipping, and the learning-rate schedules (warmup then cosine, WSD, or constant).
#pragma once
#include <span>
#include <unordered_map>
#include <vector>

#include "config/training.hpp"
#include "model/params.hpp"
#include "parallel/comm.hpp"

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
  // [optim]'s schedule over a run of max_steps ([run] max_steps).
  static LrSchedule from_config(const OptimConfig& optim, std::int64_t max_steps);
};

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1, grad_clip = 1.0;
  // Granularity of the gradient norm's partial sums and of ZeRO-1 parts (whole chunks): a parameter of
  // at most this many elements is one chunk, larger ones are cut into at most 1024 chunks. Fixed per
  // parameter, so every layout clips by the same norm (optimizer.cpp).
  std::int64_t norm_chunk = 1 << 18;
  static AdamWConfig from_config(const OptimConfig& optim);
};

// Where the parameters are replicated (null: nowhere, a one-rank run). Routed-expert tensors
// (Param::expert) are replicated over the expert-data-parallel group, every other parameter over DP, and
// over TP too unless it is split (Param::tp).
struct OptimizerGroups {
  parallel::Communicator* dp = nullptr;
  parallel::Communicator* edp = nullptr;
  parallel::Communicator* tp = nullptr;
  parallel::Communicator* world = nullptr;  // every rank holding some parameter: the gradient norm's sum
  // ZeRO-1: the n replicas of a parameter each keep the AdamW moments of about 1/n of its elements (whole
  // norm chunks); gradients are reduce-scattered, each rank updates its part of the master, and the parts
  // are all-gathered.
  bool zero1 = false;
  // Overlap: start_reduction() starts the reductions during the backward (false: it does nothing and
  // reduce_gradients() does them all; the results are the same bits either way).
  bool overlap = true;
};

class AdamW {
 public:
  // With ZeRO-1 a parameter's gradient moves into a buffer padded to whole parts (Param::grad then views
  // its first numel() elements).
  AdamW(ParamStore& params, const AdamWConfig& config, OptimizerGroups groups = {});
  // Sums every gradient over the ranks that replicate its parameter (dp or edp; first over tp for the
  // TpRole::partial ones): collective, call it once per step after the backward passes of every
  // micro-batch. With ZeRO-1 a rank receives only the sum of its own part (reduce-scatter); Param::grad
  // then holds this rank's unreduced gradient.
  void reduce_gradients();
  // Overlap with the backward: starts summing the gradients of `params` over their replicas, to run
  // while the backward goes on. Call it when no later backward of this step adds to them (after the
  // last micro-batch's backward of their layer), at the same point on every replica. Collective over
  // the replica groups. Parameters whose gradients are first summed over TP (TpRole::partial under TP)
  // are left to reduce_gradients(), which then starts the rest and finishes them all.
  void start_reduction(std::span<Param* const> params);
  // Parameters whose reduction start_reduction() started during the last step's backward.
  std::int64_t overlapped_last_step() const { return overlapped_; }
  // Whether this rank holds the first copy of p among the ranks that replicate it (dp or edp, and tp
  // unless p is split): the copy a checkpoint writes.
  bool first_copy(const Param& p) const;
  // Global L2 norm of all gradients (one host sync; with groups, one f64 all-reduce over world): every
  // parameter counted exactly once, whichever ranks replicate or shard it. Gradients must be complete
  // (after reduce_gradients).
  double grad_norm() const;
  // One step at learning rate `lr`: clips by the global norm (when grad_clip > 0), updates every
  // trainable parameter and its compute copy. Returns the norm before clipping.
  double step(double lr);
  std::int64_t steps_taken() const { return step_; }
  // This rank's moments in parameter order (undefined for buffers): parameter-shaped, or with ZeRO-1 the
  // flat part [lo, hi) of the flattened parameter that this rank updates.
  const std::vector<Tensor>& exp_avg() const { return m_; }
  const std::vector<Tensor>& exp_avg_sq() const { return v_; }
  void set_steps_taken(std::int64_t s) { step_ = s; }
  bool zero1_sharded(std::size_t i) const { return parts_[i].comm != nullptr; }

  // Checkpointing. Whole parameter-shaped moments, in parameter order (undefined for buffers).
  struct Moments {
    std::vector<Tensor> exp_avg, exp_avg_sq;
  };
  // For a save: this rank's moments, with ZeRO-1 gathered from the replicas' parts (collective over the
  // replica groups: every rank calls it at the same point).
  Moments gather_moments() const;
  // For a load, not collective: whole tensors to read into, holding this rank's current moments (the
  // moments themselves without ZeRO-1); then keep_loaded() takes this rank's parts back.
  Moments moments_to_load() const;
  void keep_loaded(const Moments& loaded);

 private:
  // This rank's part of a parameter under ZeRO-1: elements [lo, hi) of the flattened tensor, in parts of
  // `size` elements (the last one padded) over the `comm` replicas; comm null: the whole parameter.
  struct Part {
    parallel::Communicator* comm = nullptr;
    std::int64_t lo = 0, hi = 0, size = 0;
  };
  parallel::Communicator* replicas(const Param& p) const { return p.expert ? groups_.edp : groups_.dp; }
  bool first_tp_copy(const Param& p) const;  // p is split over TP, or this is TP rank 0
  // Starts the reduction of parameter i over its replicas (once per step; nothing for a lone copy):
  // whether an op was started.
  bool start_one(std::size_t i);

  ParamStore& params_;
  AdamWConfig config_;
  OptimizerGroups groups_;
  std::vector<Tensor> m_, v_;  // per parameter (undefined for buffers)
  std::vector<Part> parts_;    // per parameter
  std::vector<Tensor> grad_part_;  // ZeRO-1: the reduced gradient of this rank's part ([size] elements)
  std::vector<Tensor> padded_grad_;  // ZeRO-1: the gradient's buffer with its zero tail (Param::grad views it)
  std::unordered_map<const Param*, std::size_t> index_;  // parameter -> its index in params_.all()
  std::vector<char> started_;      // per parameter: its reduction of this step has started
  std::int64_t overlapping_ = 0, overlapped_ = 0;  // started by start_reduction: this step, the last one
  std::int64_t step_ = 0;
};

}  // namespace r1
