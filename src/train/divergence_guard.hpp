// DivergenceGuard: whether an optimizer step diverged -- a loss spike before its update, non-finite
// gradients, non-finite weights or a jump of the weight norm after it -- agreed by every rank, so that no
// diverged state is ever checkpointed ([train] divergence_policy, loss_spike_factor, max_weight_norm_growth).
#pragma once
#include <cstdint>
#include <deque>
#include <string>

#include "config/training.hpp"
#include "kernels/context.hpp"
#include "model/params.hpp"
#include "parallel/comm.hpp"
#include "train/grad_reducer.hpp"

namespace r1 {

// The weights after an update, over every rank of `world`: the L2 norm (each parameter counted once, on its
// first copy) and whether every weight of every rank, buffers included, is finite.
struct WeightState {
  double norm = 0;
  bool finite = true;
  std::string where;  // the first non-finite parameter of this rank and the rank ("" when this rank has none)
  // " (where)" when this rank knows where, for a message.
  std::string at() const { return where.empty() ? "" : " (" + where + ")"; }
};
// One sum of squares per parameter on the device (a read of every master weight, about an eighth of the
// update's memory traffic), one copy to the host and one f64 all-reduce of two values over `world`.
WeightState weight_state(const ParamStore& params, const GradReducer& grads, parallel::Communicator& world,
                         const kernels::Context& ctx);

class DivergenceGuard {
 public:
  explicit DivergenceGuard(const TrainConfig& train);
  DivergencePolicy policy() const { return policy_; }
  // Why a next-token step whose global mean loss is `loss` must not be applied ("" when it may): the loss
  // exceeds loss_spike_factor times the mean of the last kLossWindow applied steps' (once there are any).
  std::string loss_spike(double loss) const;
  // Why the weights an update left diverged ("" when they did not): non-finite, or a norm above
  // max_weight_norm_growth times the last applied step's.
  std::string weights(const WeightState& w) const;
  // A step was applied: its loss (when it has one) and, when its weights were checked, their norm
  // (weight_norm < 0: not checked) become the reference.
  void applied(bool has_loss, double loss, double weight_norm);
  // The weights went back to an earlier state (a reloaded checkpoint, or the start): its norm is the reference.
  void restored(double weight_norm);
  // Whether a diverged step may be skipped: fewer than kMaxSkipsInARow skipped since the last applied step
  // (after that, the last good state diverges again on new data: skipping more only burns the allocation).
  bool may_skip() const { return in_a_row_ < kMaxSkipsInARow; }
  void skipped() { ++in_a_row_; }

  static constexpr std::size_t kLossWindow = 10;
  static constexpr int kMaxSkipsInARow = 3;

 private:
  DivergencePolicy policy_;
  double loss_spike_factor_, max_growth_;
  std::deque<double> losses_;  // the last applied steps' losses, oldest first
  double norm_ = 0;            // the weight norm after the last applied step (0: not known yet)
  int in_a_row_ = 0;           // diverged steps skipped since the last applied one
};

}  // namespace r1
