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

// The same under `model` for an uploaded batch, on every pipeline stage.
std::vector<float> token_logprobs(const Model& model, const DeviceBatch& d) { return logprobs_of(model.score_tokens(d)); }

// The rollouts' routing, when each of them carries it ([tokens - 1][L_moe][k]; a dense model has none).
struct RolloutRouting {
  std::int64_t layers = 0, k = 0;  // layers 0: none
  std::vector<std::int64_t> here;  // the MoE layers this rank runs
};
RolloutRouting rollout_routing(const Model& m, const std::vector<Rollout>& rs) {
  const RolloutRouting r{m.trunk_moe_layers(), m.config().n_activated_experts, m.trunk_moe_layers_here()};
  const bool all = std::all_of(rs.begin(), rs.end(), [&](const Rollout& x) {
    return static_cast<std::int64_t>(x.experts.size()) == static_cast<std::int64_t>(x.tokens.size() - 1) * r.layers * r.k;
  });
  return r.layers > 0 && all ? r : RolloutRouting{};
}

// The step's micro-batches, scored before the update.
struct PackedStep {
  struct Micro {
    std::vector<std::int32_t> owner;    // pack's
    std::vector<float> old_lp, ref_lp;  // under the policy before the update, and the reference (beta_kl > 0)
    std::vector<float> rollout_lp;      // under the rollout's forward (empty when the rollouts lack them)
  };
  std::vector<TokenBatch> batches;
  std::vector<Micro> micros;
  std::vector<double> advantages;       // per rollout
  std::vector<std::uint8_t> truncated;  // per rollout
  GrpoNormaliser norm;                  // over every micro-batch of the data-parallel group
  MismatchStats mismatch;               // this rank's rollout/learner gap

  // Micro-batch k with the log-probs `logp_new` of the policy being trained.
  GrpoTokens tokens(std::size_t k, std::span<const float> logp_new) const {
    const Micro& m = micros[k];
    return {logp_new, m.old_lp, m.ref_lp, m.owner, advantages, truncated, m.rollout_lp};
  }
};

// The micro-batches this rank runs (micro_ranges), and their least shape. Under expert parallelism every rank
// runs as many micro-batches as the busiest rank of its EP group (dynamic sampling leaves ranks different
// numbers of rollouts); the extra ones hold padding and no loss. Under pipeline parallelism the stages pass
// activations of one shape, so every micro-batch has `micro` rows as long as the longest rollout (packed:
// rows() rows of `row` tokens), and there is at least one (a multiple of the stages under the interleaved schedule).
struct MicroShape {
  std::vector<std::pair<std::size_t, std::size_t>> ranges;
  std::int64_t min_len = 1, min_rows = 1;
};
MicroShape micro_shape(Trainer& t, const std::vector<Rollout>& rollouts, const PackConfig& c) {
  MicroShape m{.ranges = micro_ranges(rollouts, c), .min_len = c.min_len, .min_rows = 1};
  std::int64_t count = max_over(t.model().lockstep_group(), t.ctx(), static_cast<std::int64_t>(m.ranges.size()));
  const PipelinePlan& pipe = t.pipeline();
  if (pipelined(pipe)) {
    if (c.tokens > 0) {
      m.min_len = std::max(m.min_len, c.row);
    } else {
      for (const Rollout& r : rollouts) m.min_len = std::max(m.min_len, static_cast<std::int64_t>(r.tokens.size()));
    }
    m.min_rows = c.tokens > 0 ? c.rows() : c.micro;
    const std::int64_t multiple = pipe.virtual_stages > 1 ? pipe.pp->size() : 1;
    count = std::max<std::int64_t>(1, (count + multiple - 1) / multiple * multiple);
  }
  m.ranges.resize(static_cast<std::size_t>(count), {rollouts.size(), rollouts.size()});
  return m;
}

// Whether every rollout carries its rollout log-probs (those built by hand may not).
bool has_rollout_logprobs(const std::vector<Rollout>& rs) {
  return std::all_of(rs.begin(), rs.end(), [](const Rollout& r) {
    return r.policy_logprobs.size() + static_cast<std::size_t>(r.prompt_len) == r.tokens.size();
  });
}

// The rollout's log-probs of a packed micro-batch's targets (0 off them): `owner[t]` names the rollout, whose
// completion token j is the target at its start + prompt_len - 1 + j.
std::vector<float> rollout_logprobs(const std::vector<Rollout>& rs, std::size_t first, std::size_t last,
                                    const std::vector<std::int32_t>& owner) {
  const std::vector<std::int64_t> starts = rollout_starts(rs, first, last, owner);
  std::vector<float> lp(owner.size(), 0.0f);
  for (std::size_t t = 0; t < owner.size(); ++t) {
    if (owner[t] < 0) continue;
    const auto i = static_cast<std::size_t>(owner[t]);
    const std::int64_t j = static_cast<std::int64_t>(t) - starts[i - first] - (rs[i].prompt_len - 1);
    lp[t] = rs[i].policy_logprobs[static_cast<std::size_t>(j)];
  }
  return lp;
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
  const bool measured = has_rollout_logprobs(rollouts);
  R1_REQUIRE(measured || gc.rollout_correction == RolloutCorrection::none,
             "[grpo] rollout_correction needs the rollouts' own log-probs, and these rollouts have none");
  const RolloutRouting routing = rollout_routing(t.model(), rollouts);
  R1_REQUIRE(routing.layers > 0 || !gc.routing_replay,
             "[grpo] routing_replay needs the rollouts' routing, and these rollouts have none");
  p.mismatch.routed.assign(static_cast<std::size_t>(routing.layers), 0);
  p.mismatch.rerouted = p.mismatch.routed;
  for (const auto& [first, last] : shape.ranges) {
    PackedStep::Micro m;
    TokenBatch tb = c.tokens > 0 ? pack_segments(rollouts, first, last, c.pad, m.owner, c.row, shape.min_rows)
                                 : pack(rollouts, first, last, c.pad, m.owner, shape.min_len, shape.min_rows);
    std::vector<std::int32_t> recorded;
    if (routing.layers > 0) {  // replayed, or overwritten with the learner's routing to compare
      recorded = pack_experts(rollouts, first, last, tb, m.owner, routing.layers, routing.k);
      tb.experts = recorded;
      tb.replay_experts = gc.routing_replay;
    }
    const DeviceBatch old = t.model().upload(tb);
    m.old_lp = token_logprobs(t.model(), old);
    if (routing.layers > 0) count_rerouted(recorded, old.experts, routing.here, p.mismatch);
    if (reference) m.ref_lp = token_logprobs(*reference, reference->upload(tb));
    if (!gc.routing_replay) tb.experts.clear();  // the update routes on its own
    p.batches.push_back(std::move(tb));
    if (measured) {
      m.rollout_lp = rollout_logprobs(rollouts, first, last, m.owner);
      for (std::size_t i = 0; i < m.owner.size(); ++i)
        if (m.owner[i] >= 0) p.mismatch.add(m.old_lp[i], m.rollout_lp[i]);
    }
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

// Rollout `i`'s tokens at flat index `start` of `b`, the next tokens of its completion as targets, owned by i.
void place(const Rollout& r, std::size_t i, std::size_t start, TokenBatch& b, std::vector<std::int32_t>& owner) {
  std::copy(r.tokens.begin(), r.tokens.end(), b.ids.begin() + static_cast<std::ptrdiff_t>(start));
  for (std::size_t t = static_cast<std::size_t>(r.prompt_len) - 1; t + 1 < r.tokens.size(); ++t) {
    b.targets[start + t] = r.tokens[t + 1];
    owner[start + t] = static_cast<std::int32_t>(i);
  }
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
  up.mismatch = p.mismatch;
  if (pipelined(t.pipeline())) {
    sum_over(*t.pipeline().pp, t.ctx(), up.stats);
    // Each stage compared its own MoE layers.
    for (std::vector<double>* v : {&up.mismatch.routed, &up.mismatch.rerouted}) sum_over(*t.pipeline().pp, t.ctx(), *v);
  }
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
  for (std::size_t i = first; i < last; ++i) place(rs[i], i, (i - first) * static_cast<std::size_t>(len), b, owner);
  return b;
}

std::vector<std::pair<std::size_t, std::size_t>> micro_ranges(const std::vector<Rollout>& rs, const PackConfig& c) {
  std::vector<std::pair<std::size_t, std::size_t>> ranges;
  if (c.tokens <= 0) {
    for (std::size_t first = 0; first < rs.size(); first += static_cast<std::size_t>(c.micro))
      ranges.emplace_back(first, std::min(rs.size(), first + static_cast<std::size_t>(c.micro)));
    return ranges;
  }
  std::int64_t rows = 0, used = c.row;  // rows of the open micro-batch; tokens of its last row
  for (std::size_t i = 0; i < rs.size(); ++i) {
    const auto n = static_cast<std::int64_t>(rs[i].tokens.size());
    R1_REQUIRE(n <= c.row, "[grpo] micro_tokens: a rollout of ", n, " tokens (prompt + completion) does not fit a packed row of ",
               c.row, " tokens; raise micro_tokens to at least ", n);
    if (used + n > c.row) {  // the next row, in a new micro-batch when this one has all its rows
      if (rows == c.rows() || ranges.empty()) {
        ranges.emplace_back(i, i);
        rows = 0;
      }
      ++rows;
      used = 0;
    }
    used += n;
    ranges.back().second = i + 1;
  }
  return ranges;
}

TokenBatch pack_segments(const std::vector<Rollout>& rs, std::size_t first, std::size_t last, std::int32_t pad,
                         std::vector<std::int32_t>& owner, std::int64_t len, std::int64_t min_rows) {
  std::vector<std::int64_t> at;  // where each rollout starts in the flat [B S] layout
  std::int64_t row = 0, used = 0;
  for (std::size_t i = first; i < last; ++i) {
    const auto n = static_cast<std::int64_t>(rs[i].tokens.size());
    R1_CHECK(n <= len, "rollout ", i, " of ", n, " tokens packed into rows of ", len);
    if (used + n > len) {
      ++row;
      used = 0;
    }
    at.push_back(row * len + used);
    used += n;
  }
  TokenBatch b;
  b.batch = std::max<std::int64_t>(min_rows, at.empty() ? 1 : row + 1);
  b.seq = len;
  b.ids.assign(static_cast<std::size_t>(b.batch * len), pad);
  b.targets.assign(b.ids.size(), -1);
  owner.assign(b.ids.size(), -1);
  b.segment_ids.assign(b.ids.size(), -1);  // padding: -1 until the rollouts are in, then one segment per row tail
  for (std::size_t i = first; i < last; ++i) {
    const auto start = static_cast<std::size_t>(at[i - first]);
    place(rs[i], i, start, b, owner);
    std::fill_n(b.segment_ids.begin() + static_cast<std::ptrdiff_t>(start), rs[i].tokens.size(), static_cast<std::int32_t>(i - first));
  }
  const auto tail = static_cast<std::int32_t>(last - first);
  for (std::int32_t& s : b.segment_ids) s = s < 0 ? tail : s;
  return b;
}

std::vector<std::int64_t> rollout_starts(const std::vector<Rollout>& rs, std::size_t first, std::size_t last,
                                         const std::vector<std::int32_t>& owner) {
  std::vector<std::int64_t> starts(last - first, -1);
  for (std::size_t t = owner.size(); t-- > 0;) {  // backwards: each rollout's first loss token wins
    if (owner[t] < 0) continue;
    const auto i = static_cast<std::size_t>(owner[t]);
    starts[i - first] = static_cast<std::int64_t>(t) - (rs[i].prompt_len - 1);
  }
  for (std::size_t i = 0; i < starts.size(); ++i) R1_CHECK(starts[i] >= 0, "rollout ", first + i, " has no completion token packed");
  return starts;
}

std::vector<std::int32_t> pack_experts(const std::vector<Rollout>& rs, std::size_t first, std::size_t last, const TokenBatch& b,
                                       const std::vector<std::int32_t>& owner, std::int64_t layers, std::int64_t k) {
  const std::int64_t T = b.batch * b.seq;
  const std::vector<std::int64_t> starts = rollout_starts(rs, first, last, owner);
  std::vector<std::int32_t> e(static_cast<std::size_t>(layers * T * k), -1);
  for (std::size_t i = first; i < last; ++i) {
    const auto rows = static_cast<std::int64_t>(rs[i].tokens.size()) - 1;
    R1_CHECK(static_cast<std::int64_t>(rs[i].experts.size()) == rows * layers * k, "rollout ", i, " has ",
             rs[i].experts.size(), " expert ids for ", rows, " tokens of ", layers, " MoE layers of ", k);
    const std::int64_t row0 = starts[i - first];
    for (std::int64_t p = 0; p < rows; ++p)
      for (std::int64_t l = 0; l < layers; ++l)
        for (std::int64_t j = 0; j < k; ++j)
          e[static_cast<std::size_t>((l * T + row0 + p) * k + j)] = rs[i].experts[static_cast<std::size_t>((p * layers + l) * k + j)];
  }
  return e;
}

void count_rerouted(const std::vector<std::int32_t>& rollout, const Tensor& learner, const std::vector<std::int64_t>& layers_here,
                    MismatchStats& m) {
  Tensor h = Tensor::host(learner.shape(), DType::i32);
  copy(h, learner);
  const std::int32_t* got = h.data<std::int32_t>();
  const auto T = static_cast<std::size_t>(learner.dim(1)), k = static_cast<std::size_t>(learner.dim(2));
  R1_CHECK(rollout.size() == static_cast<std::size_t>(learner.numel()) && m.routed.size() == static_cast<std::size_t>(learner.dim(0)) &&
               m.rerouted.size() == m.routed.size(),
           "rerouting counts of ", m.routed.size(), " layers for ", rollout.size(), " recorded ids and the learner's ", learner.str());
  std::vector<std::int32_t> a(k), b(k);  // the two expert sets, sorted
  for (const std::int64_t l : layers_here)
    for (std::size_t row = 0; row < T; ++row) {
      const std::size_t at = (static_cast<std::size_t>(l) * T + row) * k;
      if (rollout[at] < 0) continue;
      std::copy(rollout.begin() + static_cast<std::ptrdiff_t>(at), rollout.begin() + static_cast<std::ptrdiff_t>(at + k), a.begin());
      std::copy(got + at, got + at + k, b.begin());
      std::sort(a.begin(), a.end());
      std::sort(b.begin(), b.end());
      m.routed[static_cast<std::size_t>(l)] += 1;
      m.rerouted[static_cast<std::size_t>(l)] += a != b;
    }
}

void begin_phase(const kernels::Context& ctx, bool release) {
  if (release) ctx.allocator()->release_cache();
  ctx.allocator()->reset_peak();
}

double phase_peak(const kernels::Context& ctx) { return static_cast<double>(ctx.allocator()->use().peak); }

GrpoUpdate grpo_step(Trainer& trainer, const Model* reference, const std::vector<Rollout>& rollouts, const PackConfig& packing,
                     const GrpoConfig& config) {
  const kernels::Context& ctx = trainer.ctx();
  begin_phase(ctx, true);
  const PackedStep packed = pack_step(trainer, reference, rollouts, packing, config);
  const double scoring = phase_peak(ctx);
  begin_phase(ctx, false);
  GrpoUpdate up = update_policy(trainer, packed, config);
  up.memory.scoring = scoring;
  up.memory.update = phase_peak(ctx);
  begin_phase(ctx, true);
  return up;
}

}  // namespace r1
