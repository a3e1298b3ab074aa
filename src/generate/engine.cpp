#include "generate/engine.hpp"

#include <algorithm>
#include <optional>

#include "core/error.hpp"
#include "kernels/cross_entropy.hpp"
#include "kernels/graph.hpp"
#include "kernels/profile.hpp"
#include "kernels/sampling.hpp"
#include "parallel/comm.hpp"
#include "tokenizer/tokenizer.hpp"

namespace r1 {

const char* finish_reason_name(FinishReason r) { return r == FinishReason::stop ? "stop" : "length"; }

void fill_text(std::vector<Completion>& completions, const Tokenizer& tok) {
  for (Completion& c : completions) c.text = tok.decode(c.tokens);
}

namespace {
// A sequence being generated: where its completion goes, its sampling key and its length limit.
struct Sequence {
  Completion* out;
  std::uint64_t prompt_key;  // global prompt index
  std::int64_t limit;        // new tokens allowed
};

Tensor on_host(const Tensor& t) {
  Tensor h = Tensor::host(t.shape(), t.dtype());
  copy(h, t);
  return h;
}

// A step's draws where the logits are: token ids, their log-probs and entropies under the sampling policy,
// and minus their log-probs under the untempered policy (the cross-entropy of the drawn token), all in one
// buffer so that a step reads them back in one copy.
struct Draws {
  Tensor all;                // f32 [4, B]: lp, ent, nlp, tok (i32 bits)
  Tensor lp, ent, nlp, tok;  // f32 [B] x 3, i32 [B]: views of `all`
  Draws() = default;
  Draws(const kernels::Context& ctx, std::int64_t B)
      : all(ctx.empty({4, B}, DType::f32)), lp(row(0, B)), ent(row(1, B)), nlp(row(2, B)),
        tok(row(3, B).reinterpret(DType::i32)), lse_(ctx.empty({B}, DType::f32)) {}
  void draw(const kernels::Context& ctx, const Tensor& logits, const Tensor& u, const kernels::SampleOptions& opts) const {
    kernels::sample_rows(ctx, logits, u, opts, tok, lp, ent);
    kernels::cross_entropy_forward(ctx, logits, tok, nlp, lse_);
  }

 private:
  Tensor row(std::int64_t r, std::int64_t B) const { return all.slice(r, r + 1).view({B}); }
  Tensor lse_;
};

// Every (prompt, sample) pair as a sequence writing into `out` (prompt-major), each prompt checked.
std::vector<Sequence> sequences(const ModelConfig& c, const std::vector<std::vector<std::int32_t>>& prompts,
                                std::int64_t samples_per_prompt, const SamplingParams& params,
                                std::int64_t first_prompt_index, std::vector<Completion>& out) {
  const auto n_prompts = static_cast<std::int64_t>(prompts.size());
  out.assign(static_cast<std::size_t>(n_prompts * samples_per_prompt), Completion{});
  std::vector<Sequence> seqs;
  for (std::int64_t p = 0; p < n_prompts; ++p) {
    const auto len = static_cast<std::int64_t>(prompts[static_cast<std::size_t>(p)].size());
    R1_REQUIRE(len >= 1 && len < c.max_seq_len, "generate: prompt ", p, " has ", len, " tokens; a prompt needs 1 to ",
               c.max_seq_len - 1, " ([model] max_seq_len - 1) to leave room for a new token");
    for (std::int64_t s = 0; s < samples_per_prompt; ++s) {
      Completion& comp = out[static_cast<std::size_t>(p * samples_per_prompt + s)];
      comp.prompt_index = p;
      comp.sample_index = s;
      seqs.push_back({&comp, static_cast<std::uint64_t>(first_prompt_index + p),
                      std::min(params.max_new_tokens, c.max_seq_len - len)});
    }
  }
  return seqs;
}

// The routing of the tokens each pass feeds (SamplingParams::record_experts): the pass's MoE layers write their
// selections into one i32 [L_moe, rows, k] buffer in the model's memory, copied to the host once after the
// pass and appended to the sequences' completions.
class RoutingRecorder {
 public:
  RoutingRecorder(const Model& model, bool on)
      : layers_(on ? model.trunk_moe_layers() : 0), k_(model.config().n_activated_experts), here_(layers_, false) {
    R1_REQUIRE(layers_ == 0 || model.config().n_routed_experts <= 32767, "recording the routing of ",
               model.config().n_routed_experts, " experts: at most 32767 fit its 16-bit ids");
    if (layers_ > 0)
      for (std::int64_t l : model.trunk_moe_layers_here()) here_[static_cast<std::size_t>(l)] = true;
  }
  // The buffer of a pass over `rows` token rows (undefined when nothing is recorded).
  Tensor buffer(const kernels::Context& ctx, std::int64_t rows) const {
    return layers_ > 0 ? ctx.empty({layers_, rows, k_}, DType::i32) : Tensor{};
  }
  // Appends rows [i stride, i stride + fed[i]) of `buf` to live sequence i's completion.
  void append(const Tensor& buf, const std::vector<Sequence*>& live, std::int64_t stride, const std::vector<std::int64_t>& fed) const {
    if (layers_ == 0) return;
    const Tensor h = on_host(buf);
    const std::int32_t* ids = h.data<std::int32_t>();
    const std::int64_t rows = buf.dim(1);
    for (std::size_t i = 0; i < live.size(); ++i) {
      std::vector<std::int16_t>& out = live[i]->out->experts;
      for (std::int64_t r = static_cast<std::int64_t>(i) * stride; r < static_cast<std::int64_t>(i) * stride + fed[i]; ++r)
        for (std::int64_t l = 0; l < layers_; ++l)
          for (std::int64_t j = 0; j < k_; ++j)
            out.push_back(here_[static_cast<std::size_t>(l)] ? static_cast<std::int16_t>(ids[(l * rows + r) * k_ + j]) : -1);
    }
  }

 private:
  std::int64_t layers_, k_;
  std::vector<bool> here_;  // the layers this rank runs
};

// Under expert parallelism every model pass is collective over the EP group, whose ranks hold different
// prompts: each rank runs one pass per tick (its batch's prefill or decode, or an idle one-token prefill
// once it has nothing left), and the group stops when no rank has work.
class Lockstep {
 public:
  Lockstep(const Model& model, const kernels::Context& ctx)
      : group_(model.lockstep_group()), flag_(group_ ? ctx.zeros({1}, DType::i32) : Tensor{}) {}
  // Whether this rank (`mine`) or, in a group, any of its ranks still has work.
  bool anyone(bool mine) const {
    if (!group_) return mine;
    Tensor h = Tensor::host({1}, DType::i32);
    h.data<std::int32_t>()[0] = mine ? 1 : 0;
    copy(flag_, h);
    group_->all_reduce(flag_, parallel::ReduceOp::max);
    group_->wait();
    copy(h, flag_);
    return h.data<std::int32_t>()[0] != 0;
  }

 private:
  parallel::Communicator* group_;
  Tensor flag_;
};

// A decode step of a small batch on one GPU (Model::decodes_on_device) as a CUDA graph: the step's inputs
// go into fixed device buffers, one launch replays the trunk, head and draw, and the graph lasts while the
// batch keeps its slots (reset() before a new batch or after a finished sequence: the next step captures
// a new one).
class GraphedDecode {
 public:
  GraphedDecode(const Model& model, const kernels::SampleOptions& opts, const RoutingRecorder& recorder)
      : model_(model), opts_(opts), recorder_(recorder) {}
  // Decodes `next` (one token per slot) with the draws' uniforms `u` (f64 [B] on the host) into `draws`, and
  // advances kv.lengths.
  void step(KvCache& kv, const std::vector<std::int32_t>& next, const Tensor& u) {
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
  void reset() {
    graph_.reset();
    ints_ = u_ = experts = Tensor{};
    draws = Draws{};
  }
  Draws draws;     // the last step's
  Tensor experts;  // its routing (RoutingRecorder::buffer)

 private:
  const Model& model_;
  const kernels::SampleOptions& opts_;
  const RoutingRecorder& recorder_;
  Tensor ints_, u_;  // i32 [3, B]: token ids, positions, lengths after; f64 [B] uniforms
  std::optional<kernels::Graph> graph_;
};

// The uniforms of the live sequences' next draws (f64 [live], host).
Tensor uniforms(const std::vector<Sequence*>& live, std::uint64_t seed) {
  Tensor u = Tensor::host({static_cast<std::int64_t>(live.size())}, DType::f64);
  for (std::size_t i = 0; i < live.size(); ++i) {
    const Completion& comp = *live[i]->out;
    u.data<double>()[i] = sampling_uniform(seed, live[i]->prompt_key, static_cast<std::uint32_t>(comp.sample_index),
                                           static_cast<std::uint32_t>(comp.tokens.size()));
  }
  return u;
}

// Appends each live sequence's draw ([live], any memory) to its completion; returns the indices of the
// sequences that go on (the others drew a stop id or reached their limit).
std::vector<std::int32_t> record(const std::vector<Sequence*>& live, const Draws& d, const std::vector<std::int32_t>& stop_ids) {
  const Tensor h = on_host(d.all);
  const std::int64_t B = d.all.dim(1);  // >= live.size()
  const float* hlp = h.data<float>();
  const float* hent = hlp + B;
  const float* hnlp = hlp + 2 * B;
  const std::int32_t* htok = h.slice(3, 4).reinterpret(DType::i32).data<std::int32_t>();
  std::vector<std::int32_t> keep;
  for (std::size_t i = 0; i < live.size(); ++i) {
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
}  // namespace

std::vector<Completion> generate(const Model& model, const std::vector<std::vector<std::int32_t>>& prompts,
                                 std::int64_t samples_per_prompt, const SamplingParams& params, std::int64_t max_batch,
                                 std::int64_t first_prompt_index) {
  validate(params);
  R1_REQUIRE(samples_per_prompt >= 1 && max_batch >= 1 && first_prompt_index >= 0, "generate: samples_per_prompt ",
             samples_per_prompt, " and max_batch ", max_batch, " must be >= 1, first_prompt_index ", first_prompt_index,
             " >= 0");
  const kernels::Context& ctx = model.params().context();
  const kernels::SampleOptions opts = sample_options(params);
  std::vector<Completion> out;
  std::vector<Sequence> seqs = sequences(model.config(), prompts, samples_per_prompt, params, first_prompt_index, out);
  const Lockstep lockstep(model, ctx);
  const RoutingRecorder recorder(model, params.record_experts);
  GraphedDecode graphed(model, opts, recorder);

  std::size_t next_first = 0;  // the first sequence of the next batch
  std::vector<Sequence*> live;  // the current batch's unfinished sequences (empty: none running)
  std::optional<KvCache> cache;
  while (lockstep.anyone(!live.empty() || next_first < seqs.size())) {
    if (live.empty() && next_first == seqs.size()) {  // idle: keep the group's collectives matched
      KvCache idle = model.make_kv_cache(1, 1);
      model.prefill(idle, {{0}});
      continue;
    }
    // Draws are made where the logits are (the GPU when the model is there): only the uniforms go up and
    // the tokens, log-probs and entropies come back.
    Draws draws;
    const auto sample = [&](const Tensor& logits) {
      draws = Draws(ctx, static_cast<std::int64_t>(live.size()));
      const kernels::ProfileRegion region(ctx, "sample");
      draws.draw(ctx, logits, ctx.to_here(uniforms(live, params.seed)), opts);
    };
    if (live.empty()) {  // a new batch: prefill its prompts
      const std::size_t n = std::min(seqs.size() - next_first, static_cast<std::size_t>(max_batch));
      std::vector<std::vector<std::int32_t>> batch_prompts;
      std::int64_t max_len = 0;
      for (std::size_t i = next_first; i < next_first + n; ++i) {
        live.push_back(&seqs[i]);
        batch_prompts.push_back(prompts[static_cast<std::size_t>(seqs[i].out->prompt_index)]);
        // The last sampled token is never fed back, so the cache needs prompt + limit - 1 rows.
        max_len = std::max(max_len, static_cast<std::int64_t>(batch_prompts.back().size()) + seqs[i].limit - 1);
      }
      next_first += n;
      cache = model.make_kv_cache(static_cast<std::int64_t>(n), max_len);
      std::int64_t S = 0;
      std::vector<std::int64_t> fed;
      for (const auto& p : batch_prompts) {
        fed.push_back(static_cast<std::int64_t>(p.size()));
        S = std::max(S, fed.back());
      }
      const Tensor experts = recorder.buffer(ctx, static_cast<std::int64_t>(n) * S);
      sample(model.prefill(*cache, batch_prompts, experts));
      recorder.append(experts, live, S, fed);
    } else {
      std::vector<std::int32_t> next;
      for (const Sequence* s : live) next.push_back(s->out->tokens.back());
      Tensor experts;
      if (params.cuda_graphs && !kernels::profile::enabled() && model.decodes_on_device(cache->slots())) {
        graphed.step(*cache, next, uniforms(live, params.seed));
        draws = graphed.draws;
        experts = graphed.experts;
      } else {
        experts = recorder.buffer(ctx, cache->slots());
        sample(model.decode(*cache, next, experts));
      }
      recorder.append(experts, live, 1, std::vector<std::int64_t>(live.size(), 1));
    }
    const std::vector<std::int32_t> keep = record(live, draws, params.stop_ids);
    if (keep.size() < live.size()) graphed.reset();  // its slots and buffers are about to change
    if (keep.empty()) {  // the batch is done
      live.clear();
      cache.reset();
    } else if (keep.size() < live.size()) {  // finished sequences leave the batch
      model.keep_slots(*cache, keep);
      std::vector<Sequence*> kept;
      for (std::int32_t i : keep) kept.push_back(live[static_cast<std::size_t>(i)]);
      live = kept;
    }
  }
  return out;
}

}  // namespace r1
