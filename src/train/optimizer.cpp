#include "train/optimizer.hpp"

#include <cmath>
#include <numbers>

#include "deck/deck.hpp"
#include "kernels/adamw.hpp"
#include "kernels/reduce.hpp"

namespace r1 {

double LrSchedule::at(std::int64_t step) const {
  if (warmup > 0 && step <= warmup) return lr * static_cast<double>(step) / static_cast<double>(warmup);
  switch (shape) {
    case Shape::constant: return lr;
    case Shape::cosine: {
      if (decay <= 0) return lr;
      const double t = std::min(1.0, static_cast<double>(step - warmup) / static_cast<double>(decay));
      return min_lr + 0.5 * (lr - min_lr) * (1 + std::cos(std::numbers::pi * t));
    }
    case Shape::wsd: {  // warmup, stable at lr, then a linear decay to min_lr over the last `decay` steps
      const std::int64_t start = total - decay;
      if (decay <= 0 || step <= start) return lr;
      const double t = std::min(1.0, static_cast<double>(step - start) / static_cast<double>(decay));
      return lr + (min_lr - lr) * t;
    }
  }
  return lr;
}

LrSchedule LrSchedule::from_deck(const Deck& d) {
  LrSchedule s;
  const std::string& shape = d.get_string("optim.schedule");
  s.shape = shape == "cosine" ? Shape::cosine : shape == "wsd" ? Shape::wsd : Shape::constant;
  s.lr = d.get_float("optim.lr");
  s.min_lr = d.get_float("optim.min_lr");
  s.warmup = d.get_int("optim.warmup_steps");
  s.total = d.get_int("run.max_steps");
  const std::int64_t decay = d.get_int("optim.decay_steps");
  s.decay = decay > 0 ? decay : (s.shape == Shape::wsd ? s.total / 5 : std::max<std::int64_t>(0, s.total - s.warmup));
  return s;
}

AdamWConfig AdamWConfig::from_deck(const Deck& d) {
  AdamWConfig c;
  c.beta1 = d.get_float("optim.beta1");
  c.beta2 = d.get_float("optim.beta2");
  c.eps = d.get_float("optim.eps");
  c.weight_decay = d.get_float("optim.weight_decay");
  c.grad_clip = d.get_float("optim.grad_clip");
  if (d.get_string("optim.moment_precision") != "fp32")
    d.fail("optim.moment_precision", "only fp32 moments are implemented (bf16 moments need a bf16 AdamW kernel)");
  return c;
}

AdamW::AdamW(ParamStore& params, const AdamWConfig& config) : params_(params), config_(config) {
  const auto& ctx = params.context();
  for (const auto& p : params.all()) {
    m_.push_back(p->trainable ? ctx.zeros(p->shape, DType::f32) : Tensor{});
    v_.push_back(p->trainable ? ctx.zeros(p->shape, DType::f32) : Tensor{});
  }
}

double AdamW::grad_norm() const {
  const auto& ctx = params_.context();
  // Per-parameter sums of squares stay on the device; one copy to the host at the end.
  Tensor sums = ctx.zeros({static_cast<std::int64_t>(params_.all().size())}, DType::f32);
  std::int64_t i = 0;
  for (const auto& p : params_.all()) {
    if (p->trainable) kernels::reduce(ctx, kernels::ReduceOp::sum_squares, p->grad, sums.slice(i, i + 1));
    ++i;
  }
  Tensor h = Tensor::host(sums.shape(), DType::f32);
  copy(h, sums);
  double total = 0;
  for (std::int64_t j = 0; j < h.numel(); ++j) total += h.data<float>()[j];
  return std::sqrt(total);
}

double AdamW::step(double lr) {
  const double norm = grad_norm();
  R1_REQUIRE(std::isfinite(norm), "the gradient norm is ", norm, " at optimizer step ", step_ + 1,
             ": the loss diverged (lower [optim] lr, or raise [optim] warmup_steps)");
  const double scale = config_.grad_clip > 0 && norm > config_.grad_clip ? config_.grad_clip / norm : 1.0;
  ++step_;
  const auto& ctx = params_.context();
  std::size_t i = 0;
  for (const auto& p : params_.all()) {
    if (p->trainable) {
      kernels::AdamWOptions o;
      o.lr = static_cast<float>(lr);
      o.beta1 = static_cast<float>(config_.beta1);
      o.beta2 = static_cast<float>(config_.beta2);
      o.eps = static_cast<float>(config_.eps);
      o.weight_decay = p->decay ? static_cast<float>(config_.weight_decay) : 0.0f;
      o.step = step_;
      o.grad_scale = static_cast<float>(scale);
      const bool bf16 = p->compute.dtype() == DType::bf16;
      kernels::adamw_step(ctx, p->master, p->grad, m_[i], v_[i], o, bf16 ? p->compute : Tensor{});
    }
    ++i;
  }
  return norm;
}

}  // namespace r1
