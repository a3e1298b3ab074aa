#include "train/grad_reducer.hpp"

#include <algorithm>
#include <utility>

#include "kernels/elementwise.hpp"
#include "run/stage_env.hpp"

namespace r1 {

namespace {
Tensor flat(const Tensor& t) { return t.view({t.numel()}); }
constexpr std::int64_t kMaxChunks = 1024;
}  // namespace

ReplicaGroups ReplicaGroups::from_env(const StageEnv& env, bool zero1) {
  return {.dp = env.comms->dp.get(), .edp = env.comms->edp.get(), .tp = env.comms->tp.get(), .world = env.comms->world.get(),
          .zero1 = zero1 && env.cfg.parallel.zero1,
          .overlap = env.cfg.parallel.overlap_grad_reduce};
}

ReplicaGroups ReplicaGroups::with_copies_of(const Model& model) const {
  ReplicaGroups g = *this;
  if (model.second_copy_params().empty()) return g;
  g.mirror = model.pipeline_group();
  g.second_copies.assign(model.second_copy_params().begin(), model.second_copy_params().end());
  return g;
}

std::int64_t grad_chunk(std::int64_t numel, std::int64_t min_chunk) {
  return std::max<std::int64_t>({1, min_chunk, (numel + kMaxChunks - 1) / kMaxChunks});
}

GradReducer::GradReducer(ParamStore& params, ReplicaGroups groups, std::int64_t min_chunk)
    : params_(params), groups_(groups), min_chunk_(min_chunk) {
  const auto& ctx = params.context();
  for (const auto& p : params.all()) {
    Part part{.hi = p->master.numel(), .size = p->master.numel()};
    parallel::Communicator* c = replicas(*p);
    if (groups.zero1 && p->trainable && c != nullptr && c->size() > 1) {
      const std::int64_t n = p->master.numel(), ranks = c->size();
      part.comm = c;
      const std::int64_t chunk = grad_chunk(n, min_chunk), chunks = (n + chunk - 1) / chunk;
      part.size = chunk * ((chunks + ranks - 1) / ranks);  // whole chunks (the last ranks may hold none)
      part.lo = std::min(n, c->rank() * part.size);
      part.hi = std::min(n, part.lo + part.size);
    }
    grad_part_.push_back(part.comm ? ctx.zeros({part.size}, DType::f32) : Tensor{});
    // ZeRO-1 reduce-scatters n x part.size elements: the gradient gets a zero tail to fill the last part
    // (never written), so the reduction reads it in place, with no staging copy held through the backward.
    Tensor padded;
    if (part.comm && part.size * part.comm->size() != p->grad.numel()) {
      padded = ctx.zeros({part.size * part.comm->size()}, DType::f32);
      kernels::cast(ctx, flat(p->grad), padded.slice(0, p->grad.numel()));
      p->grad = padded.slice(0, p->grad.numel()).view(p->shape);
    }
    padded_grad_.push_back(padded);
    parts_.push_back(part);
    index_[p.get()] = index_.size();
  }
  started_.assign(parts_.size(), 0);
  if (groups_.mirror == nullptr) return;
  second_copies_.insert(groups_.second_copies.begin(), groups_.second_copies.end());
  std::int64_t largest = 0;
  for (const auto& p : params.all())
    if (p->trainable) {
      by_name_.push_back(p.get());
      largest = std::max(largest, p->grad.numel());
    }
  std::sort(by_name_.begin(), by_name_.end(), [](const Param* a, const Param* b) { return a->name < b->name; });
  mirror_grad_ = ctx.empty({largest}, DType::f32);
}

std::int64_t GradReducer::chunk(std::size_t i) const { return grad_chunk(params_.all()[i]->master.numel(), min_chunk_); }

bool GradReducer::first_tp_copy(const Param& p) const {
  if (second_copies_.contains(&p)) return false;
  return p.expert || p.tp == TpRole::split || groups_.tp == nullptr || groups_.tp->rank() == 0;
}

bool GradReducer::first_copy(const Param& p) const {
  const parallel::Communicator* r = replicas(p);
  return first_tp_copy(p) && (r == nullptr || r->rank() == 0);
}

bool GradReducer::start_one(std::size_t i) {
  if (started_[i]) return false;
  started_[i] = 1;
  const Param& p = *params_.all()[i];
  parallel::Communicator* c = replicas(p);
  if (!p.trainable || c == nullptr || c->size() == 1) return false;
  const Part& part = parts_[i];
  if (!part.comm) {
    c->start_all_reduce(p.grad);
    return true;
  }
  c->start_reduce_scatter(padded_grad_[i].defined() ? padded_grad_[i] : flat(p.grad), grad_part_[i]);
  return true;
}

void GradReducer::start(std::span<Param* const> params) {
  if (!groups_.overlap || groups_.mirror != nullptr) return;
  const bool tp_partials = groups_.tp != nullptr && groups_.tp->size() > 1;
  for (Param* p : params) {
    const auto it = index_.find(p);
    R1_CHECK(it != index_.end(), "GradReducer::start: ", p->name, " is not a parameter of this reducer");
    if (!(tp_partials && !p->expert && p->tp == TpRole::partial)) overlapping_ += start_one(it->second);
  }
}

// Both copies add the same two gradients (a + b = b + a in IEEE arithmetic), so they hold the same bits,
// and so do the reductions over their replicas that follow (the same inputs, op by op). Each parameter's
// reduction starts as soon as its copies are summed, beside the next parameters' exchanges; every replica
// of this stage takes the parameters in the same (name) order.
void GradReducer::sum_with_mirror() {
  parallel::Communicator& pp = *groups_.mirror;
  const int peer = pp.size() - 1 - pp.rank();
  const auto& ctx = params_.context();
  for (Param* p : by_name_) {
    const Tensor mine = flat(p->grad), theirs = mirror_grad_.slice(0, mine.numel());
    pp.send_recv(mine, peer, theirs, peer);
    kernels::axpy(ctx, 1.0f, theirs, mine);
    start_one(index_.at(p));
  }
  pp.wait();
}

// Every replica group issues its ops in one order on all its members: the parameters started during
// the backward (in the order the layers finished), then the rest in parameter order.
void GradReducer::reduce() {
  if (groups_.tp != nullptr && groups_.tp->size() > 1) {  // partial gradients first: they are summed before DP
    for (const auto& p : params_.all())
      if (p->trainable && !p->expert && p->tp == TpRole::partial) groups_.tp->all_reduce(p->grad);
    groups_.tp->wait();
  }
  if (groups_.mirror != nullptr) sum_with_mirror();
  for (std::size_t i = 0; i < parts_.size(); ++i) start_one(i);
  for (parallel::Communicator* c : {groups_.dp, groups_.edp})
    if (c != nullptr) c->wait();
  started_.assign(parts_.size(), 0);
  overlapped_ = std::exchange(overlapping_, 0);
}

}  // namespace r1
