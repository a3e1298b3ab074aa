#include "rl/grpo_step.hpp"

#include <algorithm>

#include "model/model.hpp"
#include "rl/grpo_stats.hpp"
#include "run/host_reduce.hpp"

namespace r1 {
namespace {

bool pipelined(const PipelinePlan& pipe) { return pipe.pp != nullptr && pipe.pp->size() > 1; }

// log pi(target) per token (0 where there is no target) from per-token cross-entropies.
std::vector<float> logprobs_of(const Tensor& token_losses) {
  Tensor h = Tensor::host(token_losses.shape(), DType::f32);
  copy(h, token_losses);
  std::vector<float> lp(h.data<float>(), h.data<float>() + h.numel());
  for (float& v : lp) v = -v;
  return lp;
}

// The same under `model` for a packed batch, on every pipeline stage.
std::vector<float> token_logprobs(const Model& model, const TokenBatch& tb) {
  return logprobs_of(model.score_tokens(model.upload(tb)));
}

// The step's micro-batches, scored before the update.
struct PackedStep {
  struct Micro {
    std::vector<std::int32_t> owner;    // pack's
    std::vector<float> old_lp, ref_lp;  // under the policy before the update, and the reference (beta_kl > 0)
  };
  std::vector<TokenBatch> batches;
  std::vector<Micro> micros;
  std::vector<double> advantages;       // per rollout
  std::vector<std::uint8_t> truncated;  // per rollout
  GrpoNormaliser norm;                  // over every micro-batch of the data-parallel group

  // Micro-batch k with the log-probs `logp_new` of the policy being trained.
  GrpoTokens tokens(std::size_t k, std::span<const float> logp_new) const {
    return {logp_new, micros[k].old_lp, micros[k].ref_lp, micros[k].owner, advantages, truncated};
  }
};

// How many micro-batches this rank runs, and their least shape. Under expert parallelism every rank runs
// as many micro-batches as the busiest rank of its EP group (dynamic sampling leaves ranks different
// numbers of rollouts); the extra ones hold padding and no loss. Under pipeline parallelism the stages
// pass activations of one shape, so every micro-batch has `micro` rows as long as the longest rollout,
// and there is at least one (a multiple of the stages under the interleaved schedule).
struct MicroShape {
  std::int64_t count = 0, min_len = 1, min_rows = 1;
};
MicroShape micro_shape(Trainer& t, const std::vector<Rollout>& rollouts, const PackConfig& c) {
  const auto micro = static_cast<std::size_t>(c.micro);
  const auto real_micros = static_cast<std::int64_t>((rollouts.size() + micro - 1) / micro);
  MicroShape m{.count = max_over(t.model().lockstep_group(), t.ctx(), real_micros), .min_len = c.min_len, .min_rows = 1};
  const PipelinePlan& pipe = t.pipeline();
  if (pipelined(pipe)) {
    for (const Rollout& r : rollouts) m.min_len = std::max(m.min_len, static_cast<std::int64_t>(r.tokens.size()));
    m.min_rows = c.micro;
    const std::int64_t multiple = pipe.virtual_stages > 1 ? pipe.pp->size() : 1;
    m.count = std::max<std::int64_t>(1, (m.count + multiple - 1) / multiple * multiple);
  }
  return m;
}

// Old-policy and reference log-probs per micro-batch, and the step's normaliser over all ranks.
PackedStep pack_step(Trainer& t, const Model* reference, const std::vector<Rollout>& rollouts, const PackConfig& c,
                     const GrpoConfig& gc) {
  PackedStep p;
  for (const Rollout& r : rollouts) {
    p.advantages.push_back(r.advantage);
    p.truncated.push_back(r.truncated ? 1 : 0);
  }
  const MicroShape shape = micro_shape(t, rollouts, c);
  for (std::int64_t k = 0; k < shape.count; ++k) {
    PackedStep::Micro m;
    const auto first = static_cast<std::size_t>(k * c.micro);
    p.batches.push_back(pack(rollouts, std::min(first, rollouts.size()),
                             std::min(rollouts.size(), first + static_cast<std::size_t>(c.micro)), c.pad, m.owner,
                             shape.min_len, shape.min_rows));
    m.old_lp = token_logprobs(t.model(), p.batches.back());
    if (reference) m.ref_lp = token_logprobs(*reference, p.batches.back());
    p.micros.push_back(std::move(m));
    p.norm += grpo_normaliser(p.tokens(p.micros.size() - 1, p.micros.back().old_lp), gc);
  }
  std::vector<double> totals{p.norm.tokens, p.norm.completions};
  sum_over(t.dp(), t.ctx(), totals);
  p.norm.tokens = totals[0];
  p.norm.completions = totals[1];
  return p;
}

// Model::backward's per-token weights of micro-batch k from its forward: a token's weight depends on its
// log-prob under the current policy. Adds the loss statistics to `stats` when it is given.
TokenWeights grpo_weights(const PackedStep& p, const GrpoConfig& gc, const kernels::Context& ctx, GrpoStats* stats) {
  return [&p, &gc, &ctx, stats](std::size_t k, const Tensor& token_losses) {
    const std::vector<float> lp = logprobs_of(token_losses);
    GrpoStats s;
    const std::vector<float> w = grpo_token_weights(p.tokens(k, lp), p.norm, gc, &s);
    if (stats) *stats += s;
    Tensor wh = Tensor::host({static_cast<std::int64_t>(w.size())}, DType::f32);
    std::copy(w.begin(), w.end(), wh.data<float>());
    return ctx.to_here(wh);
  };
}

// The update: inner epochs over the same micro-batches, each one optimizer update of the Trainer's step;
// the statistics are the last epoch's (on the last pipeline stage, where the loss is computed; then summed
// over the stages).
GrpoUpdate update_policy(Trainer& t, const PackedStep& p, const GrpoConfig& gc) {
  GrpoUpdate up;
  const auto weights = [&](std::int64_t epoch) {
    return grpo_weights(p, gc, t.ctx(), epoch == gc.inner_epochs - 1 ? &up.stats : nullptr);
  };
  up.result = t.step(p.batches, gc.inner_epochs, weights, 0.0f, 0.0f);
  if (pipelined(t.pipeline())) sum_over(*t.pipeline().pp, t.ctx(), up.stats);
  return up;
}

}  // namespace

TokenBatch pack(const std::vector<Rollout>& rs, std::size_t first, std::size_t last, std::int32_t pad,
                std::vector<std::int32_t>& owner, std::int64_t min_len, std::int64_t min_rows) {
  std::int64_t len = min_len;
  for (std::size_t i = first; i < last; ++i) len = std::max<std::int64_t>(len, static_cast<std::int64_t>(rs[i].tokens.size()));
  TokenBatch b;
  b.batch = std::max<std::int64_t>(min_rows, static_cast<std::int64_t>(last - first));
  b.seq = len;
  b.ids.assign(static_cast<std::size_t>(b.batch * len), pad);
  b.targets.assign(b.ids.size(), -1);
  owner.assign(b.ids.size(), -1);
  for (std::size_t i = first; i < last; ++i) {
    const Rollout& r = rs[i];
    const std::size_t row = (i - first) * static_cast<std::size_t>(len);
    std::copy(r.tokens.begin(), r.tokens.end(), b.ids.begin() + static_cast<std::ptrdiff_t>(row));
    for (std::size_t t = static_cast<std::size_t>(r.prompt_len) - 1; t + 1 < r.tokens.size(); ++t) {
      b.targets[row + t] = r.tokens[t + 1];
      owner[row + t] = static_cast<std::int32_t>(i);
    }
  }
  return b;
}

GrpoUpdate grpo_step(Trainer& trainer, const Model* reference, const std::vector<Rollout>& rollouts, const PackConfig& packing,
                     const GrpoConfig& config) {
  const PackedStep packed = pack_step(trainer, reference, rollouts, packing, config);
  return update_policy(trainer, packed, config);
}

}  // namespace r1
