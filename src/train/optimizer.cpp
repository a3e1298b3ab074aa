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
    m_.push_back(p.trainable ? ctx.zeros(moment_shape, DType::f32) : Tensor{});
    v_.push_back(p.trainable ? ctx.zeros(moment_shape, DType::f32) : Tensor{});
  }
}

double AdamW::grad_norm() const {
  const auto& ctx = params_.context();
  // Per-chunk sums of squares stay on the device; one copy to the host at the end. A replicated
  // parameter counts on its first copy only, a ZeRO-1 part on the rank that owns it (among the first
  // tensor-parallel copies), so the sum over the world counts every element once.
  const auto& all = params_.all();
  std::vector<std::int64_t> first(all.size() + 1, 0);  // slot of each parameter's first chunk in `sums`
  for (std::size_t i = 0; i < all.size(); ++i) {
    const std::int64_t n = all[i]->master.numel(), chunk = grads_.chunk(i);
    first[i + 1] = first[i] + (n + chunk - 1) / chunk;
  }
  Tensor sums = ctx.zeros({first.back()}, DType::f32);
  for (std::size_t i = 0; i < all.size(); ++i) {
    const Param& p = *all[i];
    const GradReducer::Part& part = grads_.part(i);
    if (!p.trainable || (part.comm ? !grads_.first_tp_copy(p) : !grads_.first_copy(p))) continue;
    // g holds elements [base, base + g.numel()) of the flattened gradient.
    const Tensor g = part.comm ? grads_.reduced_part(i).slice(0, part.hi - part.lo) : flat(p.grad);
    const std::int64_t n = p.grad.numel(), base = part.comm ? part.lo : 0, chunk = grads_.chunk(i);
    if (g.numel() == 0) continue;  // a ZeRO-1 rank past the last part
    R1_CHECK(base % chunk == 0, "ZeRO-1 part of ", p.name, " starts inside a norm chunk");
    // Every whole chunk in one launch (a row each), then the tensor's partial last chunk if g holds it:
    // a chunk's sum depends on its elements only, so all layouts agree on it.
    const std::int64_t j0 = base / chunk, j1 = (base + g.numel() + chunk - 1) / chunk, whole = std::min(j1, n / chunk);
    if (whole > j0)
      kernels::reduce_rows(ctx, kernels::ReduceOp::sum_squares,
                           g.slice(0, (whole - j0) * chunk).view({whole - j0, chunk}),
                           sums.slice(first[i] + j0, first[i] + whole));
    if (j1 > whole && n % chunk != 0) {
      const std::int64_t at = first[i] + whole;
      kernels::reduce_rows(ctx, kernels::ReduceOp::sum_squares, g.slice(whole * chunk - base, n - base).view({1, n - whole * chunk}),
                           sums.slice(at, at + 1));
    }
  }
  Tensor h = Tensor::host(sums.shape(), DType::f32);
  copy(h, sums);
  double total = 0;
  for (std::int64_t j = 0; j < h.numel(); ++j) total += h.data<float>()[j];
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
  std::vector<std::pair<std::size_t, Tensor>> gathered;  // ZeRO-1: whole (padded) masters being gathered
  for (std::size_t i = 0; i < all.size(); ++i) {
    const Param& p = *all[i];
    if (!p.trainable) continue;
    kernels::AdamWOptions o;
    o.lr = static_cast<float>(lr);
    o.beta1 = static_cast<float>(config_.beta1);
    o.beta2 = static_cast<float>(config_.beta2);
    o.eps = static_cast<float>(config_.eps);
    o.weight_decay = p.decay ? static_cast<float>(config_.weight_decay) : 0.0f;
    o.step = step_;
    o.grad_scale = static_cast<float>(scale);
    const bool bf16 = p.compute.dtype() == DType::bf16;
    const GradReducer::Part& part = grads_.part(i);
    if (!part.comm) {
      kernels::adamw_step(ctx, p.master, p.grad, m_[i], v_[i], o, bf16 ? p.compute : Tensor{});
      continue;
    }
    // ZeRO-1: update this rank's part, then every replica gathers all parts.
    const std::int64_t len = part.hi - part.lo;
    if (len > 0) kernels::adamw_step(ctx, flat(p.master).slice(part.lo, part.hi), grads_.reduced_part(i).slice(0, len), m_[i], v_[i], o);
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
      const Tensor mine = ctx.zeros({part.size}, DType::f32);
      if (part.hi > part.lo) kernels::cast(ctx, *moment, mine.slice(0, part.hi - part.lo));
      const Tensor padded = ctx.empty({part.size * part.comm->size()}, DType::f32);
      part.comm->all_gather(mine, padded);
      part.comm->wait();
      *whole = padded.slice(0, p.master.numel()).view(p.shape);
    }
  }
  return out;
}

AdamW::Moments AdamW::moments_to_load() const {
  const auto& ctx = params_.context();
  Moments out{m_, v_};
  const auto& all = params_.all();
  for (std::size_t i = 0; i < all.size(); ++i) {
    const GradReducer::Part& part = grads_.part(i);
    if (!part.comm) continue;
    for (auto [moment, whole] : {std::pair{&m_[i], &out.exp_avg[i]}, std::pair{&v_[i], &out.exp_avg_sq[i]}}) {
      *whole = ctx.zeros(all[i]->shape, DType::f32);
      if (part.hi > part.lo) kernels::cast(ctx, *moment, flat(*whole).slice(part.lo, part.hi));
    }
  }
  return out;
}

void AdamW::keep_loaded(const Moments& loaded) {
  const auto& ctx = params_.context();
  for (std::size_t i = 0; i < m_.size(); ++i) {
    const GradReducer::Part& part = grads_.part(i);
    if (!part.comm || part.hi == part.lo) continue;  // without ZeRO-1 the load wrote the moments themselves
    kernels::cast(ctx, flat(loaded.exp_avg[i]).slice(part.lo, part.hi), m_[i]);
    kernels::cast(ctx, flat(loaded.exp_avg_sq[i]).slice(part.lo, part.hi), v_[i]);
  }
}

}  // namespace r1
