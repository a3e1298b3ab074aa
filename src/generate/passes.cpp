#include "generate/passes.hpp"

#include <algorithm>

#include "core/error.hpp"
#include "kernels/cross_entropy.hpp"
#include "kernels/sampling.hpp"
#include "parallel/comm.hpp"

namespace r1 {

Tensor on_host(const Tensor& t) {
  Tensor h = Tensor::host(t.shape(), t.dtype());
  copy(h, t);
  return h;
}

Draws::Draws(const kernels::Context& ctx, std::int64_t B)
    : all(ctx.empty({4, B}, DType::f32)), lp(row(0, B)), ent(row(1, B)), nlp(row(2, B)),
      tok(row(3, B).reinterpret(DType::i32)), lse_(ctx.empty({B}, DType::f32)) {}

void Draws::draw(const kernels::Context& ctx, const Tensor& logits, const Tensor& u, const kernels::SampleOptions& opts) const {
  kernels::sample_rows(ctx, logits, u, opts, tok, lp, ent);
  kernels::cross_entropy_forward(ctx, logits, tok, nlp, lse_);
}

RoutingRecorder::RoutingRecorder(const Model& model, bool on)
    : layers_(on ? model.trunk_moe_layers() : 0), k_(model.config().n_activated_experts), here_(layers_, false) {
  R1_REQUIRE(layers_ == 0 || model.config().n_routed_experts <= 32767, "recording the routing of ",
             model.config().n_routed_experts, " experts: at most 32767 fit its 16-bit ids");
  if (layers_ > 0)
    for (std::int64_t l : model.trunk_moe_layers_here()) here_[static_cast<std::size_t>(l)] = true;
}

Tensor RoutingRecorder::buffer(const kernels::Context& ctx, std::int64_t rows) const {
  return layers_ > 0 ? ctx.empty({layers_, rows, k_}, DType::i32) : Tensor{};
}

void RoutingRecorder::append(const Tensor& buf, const std::vector<Sequence*>& live, std::int64_t stride,
                             const std::vector<std::int64_t>& fed) const {
  if (layers_ == 0) return;
  const Tensor h = on_host(buf);
  for (std::size_t i = 0; i < live.size(); ++i)
    if (live[i] != nullptr) append_rows(h, static_cast<std::int64_t>(i) * stride, fed[i], live[i]->out->experts);
}

void RoutingRecorder::append_rows(const Tensor& host_buf, std::int64_t first, std::int64_t n, std::vector<std::int16_t>& out) const {
  const std::int32_t* ids = host_buf.data<std::int32_t>();
  const std::int64_t rows = host_buf.dim(1);
  for (std::int64_t r = first; r < first + n; ++r)
    for (std::int64_t l = 0; l < layers_; ++l)
      for (std::int64_t j = 0; j < k_; ++j)
        out.push_back(here_[static_cast<std::size_t>(l)] ? static_cast<std::int16_t>(ids[(l * rows + r) * k_ + j]) : -1);
}

Lockstep::Lockstep(const Model& model, const kernels::Context& ctx)
    : group_(model.lockstep_group()), flag_(group_ ? ctx.zeros({1}, DType::i32) : Tensor{}) {}

bool Lockstep::anyone(bool mine) const {
  if (!group_) return mine;
  Tensor h = Tensor::host({1}, DType::i32);
  h.data<std::int32_t>()[0] = mine ? 1 : 0;
  copy(flag_, h);
  group_->all_reduce(flag_, parallel::ReduceOp::max);
  group_->wait();
  copy(h, flag_);
  return h.data<std::int32_t>()[0] != 0;
}

bool Lockstep::idle(const Model& model) const {
  if (!group_) return false;
  KvCache idle = model.make_kv_cache(1, 1);
  model.prefill(idle, {{0}});
  return true;
}

void GraphedDecode::step(KvCache& kv, const std::vector<std::int32_t>& next, const Tensor& u) {
  const kernels::Context& ctx = model_.params().context();
  const auto B = kv.slots();
  std::vector<std::int32_t> lengths = model_.decode_lengths(kv, next);
  if (!graph_) {
    ints_ = ctx.empty({3, B}, DType::i32);
    u_ = ctx.empty({B}, DType::f64);
    draws = Draws(ctx, B);
    experts = recorder_.buffer(ctx, B);
    graph_.emplace(ctx, [&] {
      const auto row = [&](std::int64_t r) { return ints_.slice(r, r + 1).view({B}); };
      draws.draw(ctx, model_.decode_on_device(kv, row(0), row(1), row(2), experts), u_, opts_);
    });
    ++captures;
  }
  Tensor ints = Tensor::host({3, B}, DType::i32);
  std::int32_t* p = ints.data<std::int32_t>();
  std::copy(next.begin(), next.end(), p);
  std::copy(kv.lengths.begin(), kv.lengths.end(), p + B);
  std::copy(lengths.begin(), lengths.end(), p + 2 * B);
  copy(ints_, ints);
  copy(u_, u);
  graph_->launch();
  kv.lengths = std::move(lengths);
}

void GraphedDecode::reset() {
  graph_.reset();
  ints_ = u_ = experts = Tensor{};
  draws = Draws{};
}

Tensor uniforms(const std::vector<Sequence*>& live, std::uint64_t seed) {
  Tensor u = Tensor::host({static_cast<std::int64_t>(live.size())}, DType::f64);
  for (std::size_t i = 0; i < live.size(); ++i) {
    if (live[i] == nullptr) {  // an idle slot: its draw is dropped
      u.data<double>()[i] = 0.5;
      continue;
    }
    const Completion& comp = *live[i]->out;
    u.data<double>()[i] = sampling_uniform(seed, live[i]->prompt_key, static_cast<std::uint32_t>(comp.sample_index),
                                           static_cast<std::uint32_t>(comp.tokens.size()));
  }
  return u;
}

std::vector<std::int32_t> record(const std::vector<Sequence*>& live, const Draws& d, const std::vector<std::int32_t>& stop_ids) {
  const Tensor h = on_host(d.all);
  const std::int64_t B = d.all.dim(1);  // >= live.size()
  const float* hlp = h.data<float>();
  const float* hent = hlp + B;
  const float* hnlp = hlp + 2 * B;
  const std::int32_t* htok = h.slice(3, 4).reinterpret(DType::i32).data<std::int32_t>();
  std::vector<std::int32_t> keep;
  for (std::size_t i = 0; i < live.size(); ++i) {
    if (live[i] == nullptr) continue;
    Completion& comp = *live[i]->out;
    const SampledToken t{htok[i], hlp[i], hent[i]};
    comp.tokens.push_back(t.token);
    comp.logprobs.push_back(t.logprob);
    comp.entropies.push_back(t.entropy);
    comp.policy_logprobs.push_back(-hnlp[i]);
    if (std::find(stop_ids.begin(), stop_ids.end(), t.token) != stop_ids.end())
      comp.finished_by = FinishReason::stop;
    else if (static_cast<std::int64_t>(comp.tokens.size()) >= live[i]->limit)
      comp.finished_by = FinishReason::length;
    else
      keep.push_back(static_cast<std::int32_t>(i));
  }
  return keep;
}

}  // namespace r1
