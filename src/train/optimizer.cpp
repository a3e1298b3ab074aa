#include "train/optimizer.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <utility>

#include "core/error.hpp"
#include "kernels/adamw.hpp"
#include "kernels/elementwise.hpp"
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

LrSchedule LrSchedule::from_config(const OptimConfig& o, std::int64_t max_steps) {
  LrSchedule s;
  s.shape = o.schedule;
  s.lr = o.lr;
  s.min_lr = o.min_lr;
  s.warmup = o.warmup_steps;
  s.total = max_steps;
  s.decay = o.decay_steps > 0 ? o.decay_steps : (s.shape == Shape::wsd ? s.total / 5 : std::max<std::int64_t>(0, s.total - s.warmup));
  return s;
}

AdamWConfig AdamWConfig::from_config(const OptimConfig& o) {
  AdamWConfig c;
  c.beta1 = o.beta1;
  c.beta2 = o.beta2;
  c.eps = o.eps;
  c.weight_decay = o.weight_decay;
  c.grad_clip = o.grad_clip;
  c.moments = o.moment_precision == "bf16" ? DType::bf16 : DType::f32;
  return c;
}

namespace {
Tensor flat(const Tensor& t) { return t.view({t.numel()}); }
}  // namespace

AdamW::AdamW(ParamStore& params, const AdamWConfig& config, const GradReducer& grads)
    : params_(params), config_(config), grads_(grads) {
  const auto& ctx = params.context();
  const auto& all = params.all();
  for (std::size_t i = 0; i < all.size(); ++i) {
    const Param& p = *all[i];
    const GradReducer::Part& part = grads.part(i);
    const Shape moment_shape = part.comm ? Shape{part.hi - part.lo} : p.shape;
    m_.push_back(p.trainable ? ctx.zeros(moment_shape, config.moments) : Tensor{});
    v_.push_back(p.trainable ? ctx.zeros(moment_shape, config.moments) : Tensor{});
  }
}

double AdamW::grad_norm() const {
  const auto& ctx = params_.context();
  // Every chunk's sum of squares in one launch, stays on the device; one copy to the host at the end. A
  // replicated parameter counts on its first copy only, a ZeRO-1 part on the rank that owns it (among the
  // first tensor-parallel copies), so the sum over the world counts every element once. A chunk's sum
  // depends on its elements only, so all layouts agree on it; chunks are added in parameter order.
  const auto& all = params_.all();
  std::vector<Tensor> chunks;
  for (std::size_t i = 0; i < all.size(); ++i) {
    const Param& p = *all[i];
    const GradReducer::Part& part = grads_.part(i);
    if (!p.trainable || (part.comm ? !grads_.first_tp_copy(p) : !grads_.first_copy(p))) continue;
    // g holds elements [base, base + g.numel()) of the flattened gradient.
    const Tensor g = part.comm ? grads_.reduced_part(i).slice(0, part.hi - part.lo) : flat(p.grad);
    const std::int64_t base = part.comm ? part.lo : 0, chunk = grads_.chunk(i);
    if (g.numel() == 0) continue;  // a ZeRO-1 rank past the last part
    R1_CHECK(base % chunk == 0, "ZeRO-1 part of ", p.name, " starts inside a norm chunk");
    for (std::int64_t lo = base; lo < base + g.numel(); lo += chunk)
      chunks.push_back(g.slice(lo - base, std::min(lo + chunk, base + g.numel()) - base));
  }
  double total = 0;
  if (!chunks.empty()) {
    Tensor sums = ctx.empty({static_cast<std::int64_t>(chunks.size())}, DType::f32);
    kernels::reduce_each(ctx, kernels::ReduceOp::sum_squares, chunks, sums);
    Tensor h = Tensor::host(sums.shape(), DType::f32);
    copy(h, sums);
    for (std::int64_t j = 0; j < h.numel(); ++j) total += h.data<float>()[j];
  }
  parallel::Communicator* world = grads_.groups().world;
  if (world != nullptr && world->size() > 1) {
    Tensor t = Tensor::host({1}, DType::f64);
    t.data<double>()[0] = total;
    const Tensor d = ctx.to_here(t);
    world->all_reduce(d);
    world->wait();
    copy(t, d);
    total = t.data<double>()[0];
  }
  return std::sqrt(total);
}

double AdamW::step(double lr) {
  const double norm = grad_norm();
  // Thrown before anything is updated, on every rank alike (the norm is the world's).
  if (!std::isfinite(norm))
    throw Error(ErrorKind::diverged, detail::concat("the gradient norm is ", norm, " at optimizer step ", step_ + 1,
                                                    ": the loss diverged (lower [optim] lr, or raise [optim] warmup_steps)"));
  const double scale = config_.grad_clip > 0 && norm > config_.grad_clip ? config_.grad_clip / norm : 1.0;
  ++step_;
  const auto& ctx = params_.context();
  const auto& all = params_.all();
  kernels::AdamWOptions o;
  o.lr = static_cast<float>(lr);
  o.beta1 = static_cast<float>(config_.beta1);
  o.beta2 = static_cast<float>(config_.beta2);
  o.eps = static_cast<float>(config_.eps);
  o.weight_decay = static_cast<float>(config_.weight_decay);
  o.step = step_;
  o.grad_scale = static_cast<float>(scale);
  // Every trainable tensor, or with ZeRO-1 this rank's part of it, in one multi-tensor pass; the compute
  // copy of a whole tensor is written by the same pass, a ZeRO-1 one after the all-gather.
  std::vector<kernels::AdamWTensor> update;
  for (std::size_t i = 0; i < all.size(); ++i) {
    const Param& p = *all[i];
    if (!p.trainable) continue;
    const GradReducer::Part& part = grads_.part(i);
    if (!part.comm)
      update.push_back({p.master, p.grad, m_[i], v_[i], p.compute.dtype() == DType::bf16 ? p.compute : Tensor{}, p.decay});
    else if (part.hi > part.lo)
      update.push_back({flat(p.master).slice(part.lo, part.hi), grads_.reduced_part(i).slice(0, part.hi - part.lo), m_[i],
                        v_[i], Tensor{}, p.decay});
  }
  kernels::adamw_multi_step(ctx, update, o);
  // ZeRO-1: every replica gathers all parts.
  std::vector<std::pair<std::size_t, Tensor>> gathered;  // whole (padded) masters being gathered
  for (std::size_t i = 0; i < all.size(); ++i) {
    const Param& p = *all[i];
    const GradReducer::Part& part = grads_.part(i);
    if (!p.trainable || !part.comm) continue;
    const std::int64_t len = part.hi - part.lo;
    const Tensor mine = ctx.zeros({part.size}, DType::f32);
    if (len > 0) kernels::cast(ctx, flat(p.master).slice(part.lo, part.hi), mine.slice(0, len));
    const Tensor whole = ctx.empty({part.size * part.comm->size()}, DType::f32);
    part.comm->all_gather(mine, whole);
    gathered.emplace_back(i, whole);
  }
  for (parallel::Communicator* c : {grads_.groups().dp, grads_.groups().edp})
    if (c != nullptr) c->wait();
  for (const auto& [i, whole] : gathered) {
    const Param& p = *all[i];
    kernels::cast(ctx, whole.slice(0, p.master.numel()), flat(p.master));
    if (p.compute.dtype() != DType::f32) kernels::cast(ctx, p.master, p.compute);
  }
  params_.weights_changed();  // the FP8 copies (precision fp8) are made again at their next use
  return norm;
}

AdamW::Moments AdamW::gather_moments() const {
  const auto& ctx = params_.context();
  Moments out{m_, v_};
  const auto& all = params_.all();
  for (std::size_t i = 0; i < all.size(); ++i) {
    const GradReducer::Part& part = grads_.part(i);
    if (!part.comm) continue;
    const Param& p = *all[i];
    for (auto [moment, whole] : {std::pair{&m_[i], &out.exp_avg[i]}, std::pair{&v_[i], &out.exp_avg_sq[i]}}) {
      const Tensor mine = ctx.zeros({part.size}, config_.moments);
      if (part.hi > part.lo) kernels::cast(ctx, *moment, mine.slice(0, part.hi - part.lo));
      const Tensor padded = ctx.empty({part.size * part.comm->size()}, config_.moments);
      part.comm->all_gather(mine, padded);
      part.comm->wait();
      *whole = padded.slice(0, p.master.numel()).view(p.shape);
    }
  }
  return out;
}

AdamW::Moments AdamW::moments_to_load(DType stored) const {
  const auto& ctx = params_.context();
  Moments out{m_, v_};
  const auto& all = params_.all();
  for (std::size_t i = 0; i < all.size(); ++i) {
    const GradReducer::Part& part = grads_.part(i);
    if (!all[i]->trainable || (!part.comm && stored == config_.moments)) continue;
    for (auto [moment, whole] : {std::pair{&m_[i], &out.exp_avg[i]}, std::pair{&v_[i], &out.exp_avg_sq[i]}}) {
      *whole = ctx.zeros(all[i]->shape, stored);
      const Tensor into = part.comm ? flat(*whole).slice(part.lo, part.hi) : *whole;
      if (into.numel() > 0) kernels::cast(ctx, *moment, into);
    }
  }
  return out;
}

void AdamW::keep_loaded(const Moments& loaded) {
  const auto& ctx = params_.context();
  const auto& all = params_.all();
  for (std::size_t i = 0; i < m_.size(); ++i) {
    const GradReducer::Part& part = grads_.part(i);
    // Without ZeRO-1, a load in the kept dtype wrote the moments themselves.
    if (!all[i]->trainable || loaded.exp_avg[i].raw() == m_[i].raw() || m_[i].numel() == 0) continue;
    const auto mine = [&](const Tensor& whole) { return part.comm ? flat(whole).slice(part.lo, part.hi) : whole; };
    kernels::cast(ctx, mine(loaded.exp_avg[i]), m_[i]);
    kernels::cast(ctx, mine(loaded.exp_avg_sq[i]), v_[i]);
  }
}

}  // namespace r1
