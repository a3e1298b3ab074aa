#include "train/divergence_guard.hpp"

#include <cmath>
#include <vector>

#include "core/error.hpp"
#include "core/log.hpp"
#include "kernels/reduce.hpp"
#include "run/host_reduce.hpp"

namespace r1 {

WeightState weight_state(const ParamStore& params, const GradReducer& grads, parallel::Communicator& world,
                         const kernels::Context& ctx) {
  const auto& all = params.all();
  const Tensor sums = ctx.zeros({static_cast<std::int64_t>(all.size())}, DType::f32);
  for (std::size_t i = 0; i < all.size(); ++i) {
    const Tensor& w = all[i]->master;
    if (w.numel() > 0) kernels::reduce(ctx, kernels::ReduceOp::sum_squares, w.view({w.numel()}), sums.slice(i, i + 1));
  }
  Tensor h = Tensor::host(sums.shape(), DType::f32);
  copy(h, sums);
  // A non-finite weight makes its parameter's sum non-finite; so does one above ~1e19 (its square
  // overflows f32), which is as diverged.
  double squares = 0, non_finite = 0;
  std::string where;
  for (std::size_t i = 0; i < all.size(); ++i) {
    const double s = h.data<float>()[i];
    if (!std::isfinite(s)) {
      non_finite += 1;
      if (where.empty()) where = detail::concat(all[i]->name, " on rank ", world.rank());
    } else if (grads.first_copy(*all[i])) {
      squares += s;
    }
  }
  if (!where.empty()) log_error("non-finite weights: ", where);  // every rank names its own
  std::vector<double> totals{squares, non_finite};
  sum_over(world, ctx, totals);
  return {.norm = std::sqrt(totals[0]), .finite = totals[1] == 0, .where = where};
}

DivergenceGuard::DivergenceGuard(const TrainConfig& train)
    : policy_(train.divergence_policy),
      loss_spike_factor_(train.loss_spike_factor),
      max_growth_(train.max_weight_norm_growth) {}

std::string DivergenceGuard::loss_spike(double loss) const {
  if (!std::isfinite(loss)) return detail::concat("the loss is ", loss);
  if (loss_spike_factor_ <= 0 || losses_.empty()) return {};
  double mean = 0;
  for (double l : losses_) mean += l;
  mean /= static_cast<double>(losses_.size());
  if (loss <= loss_spike_factor_ * mean) return {};
  return detail::concat("the loss ", loss, " is above train.loss_spike_factor = ", loss_spike_factor_, " x ", mean,
                        " (the mean of the last ", losses_.size(), " applied steps)");
}

std::string DivergenceGuard::weights(const WeightState& w) const {
  if (!w.finite) return "the update left non-finite weights" + w.at();
  if (max_growth_ <= 0 || norm_ <= 0 || w.norm <= max_growth_ * norm_) return {};
  return detail::concat("the update grew the weight norm from ", norm_, " to ", w.norm, " (x", w.norm / norm_,
                        ", above train.max_weight_norm_growth = ", max_growth_, ")");
}

void DivergenceGuard::applied(bool has_loss, double loss, double weight_norm) {
  if (weight_norm >= 0) norm_ = weight_norm;
  in_a_row_ = 0;
  if (!has_loss) return;
  losses_.push_back(loss);
  if (losses_.size() > kLossWindow) losses_.pop_front();
}

void DivergenceGuard::restored(double weight_norm) { norm_ = weight_norm; }

}  // namespace r1
