#include "generate/engine.hpp"

#include <algorithm>
#include <optional>

#include "core/error.hpp"
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
  GraphedDecode(const Model& model, const kernels::SampleOptions& opts) : model_(model), opts_(opts) {}
  // Decodes `next` (one token per slot) with the draws' uniforms `u` (f64 [B] on the host) into tok, lp
  // and ent, and advances kv.lengths.
  void step(KvCache& kv, const std::vector<std::int32_t>& next, const Tensor& u) {
    const kernels::Context& ctx = model_.params().context();
    const auto B = kv.slots();
    std::vector<std::int32_t> lengths = model_.decode_lengths(kv, next);
    if (!graph_) {
      ints_ = ctx.empty({3, B}, DType::i32);
      u_ = ctx.empty({B}, DType::f64);
      tok = ctx.empty({B}, DType::i32), lp = ctx.empty({B}, DType::f32), ent = ctx.empty({B}, DType::f32);
      graph_.emplace(ctx, [&] {
        const auto row = [&](std::int64_t r) { return ints_.slice(r, r + 1).view({B}); };
        const Tensor logits = model_.decode_on_device(kv, row(0), row(1), row(2));
        kernels::sample_rows(ctx, logits, u_, opts_, tok, lp, ent);
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
    ints_ = u_ = tok = lp = ent = Tensor{};
  }
  Tensor tok, lp, ent;  // the last step's draws: i32 [B] token ids, f32 [B] log-probs and entropies

 private:
  const Model& model_;
  const kernels::SampleOptions& opts_;
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

// Appends each live sequence's draw (tok, lp, ent [live], any memory) to its completion; returns the
// indices of the sequences that go on (the others drew a stop id or reached their limit).
std::vector<std::int32_t> record(const std::vector<Sequence*>& live, const Tensor& tok, const Tensor& lp,
                                 const Tensor& ent, const std::vector<std::int32_t>& stop_ids) {
  const Tensor htok = on_host(tok), hlp = on_host(lp), hent = on_host(ent);
  std::vector<std::int32_t> keep;
  for (std::size_t i = 0; i < live.size(); ++i) {
    Completion& comp = *live[i]->out;
    const SampledToken t{htok.data<std::int32_t>()[i], hlp.data<float>()[i], hent.data<float>()[i]};
    comp.tokens.push_back(t.token);
    comp.logprobs.push_back(t.logprob);
    comp.entropies.push_back(t.entropy);
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
  GraphedDecode graphed(model, opts);

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
    Tensor tok, lp, ent;
    const auto sample = [&](const Tensor& logits) {
      const auto B = static_cast<std::int64_t>(live.size());
      tok = ctx.empty({B}, DType::i32), lp = ctx.empty({B}, DType::f32), ent = ctx.empty({B}, DType::f32);
      const kernels::ProfileRegion region(ctx, "sample");
      kernels::sample_rows(ctx, logits, ctx.to_here(uniforms(live, params.seed)), opts, tok, lp, ent);
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
      sample(model.prefill(*cache, batch_prompts));
    } else {
      std::vector<std::int32_t> next;
      for (const Sequence* s : live) next.push_back(s->out->tokens.back());
      if (params.cuda_graphs && !kernels::profile::enabled() && model.decodes_on_device(cache->slots())) {
        graphed.step(*cache, next, uniforms(live, params.seed));
        tok = graphed.tok, lp = graphed.lp, ent = graphed.ent;
      } else {
        sample(model.decode(*cache, next));
      }
    }
    const std::vector<std::int32_t> keep = record(live, tok, lp, ent, params.stop_ids);
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
