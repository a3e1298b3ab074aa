#include "generate/engine.hpp"

#include <algorithm>
#include <map>
#include <memory>
#include <optional>

#include "core/error.hpp"
#include "generate/passes.hpp"
#include "kernels/profile.hpp"
#include "tokenizer/tokenizer.hpp"

namespace r1 {

const char* finish_reason_name(FinishReason r) { return r == FinishReason::stop ? "stop" : "length"; }

void fill_text(std::vector<Completion>& completions, const Tokenizer& tok) {
  for (Completion& c : completions) c.text = tok.decode(c.tokens);
}

namespace {
using Prompts = std::vector<std::vector<std::int32_t>>;

// Every (prompt, sample) pair as a sequence writing into `out` (prompt-major), each prompt and limit checked.
std::vector<Sequence> sequences(const ModelConfig& c, const Prompts& prompts, std::int64_t samples_per_prompt,
                                const SamplingParams& params, std::int64_t first_prompt_index, std::vector<Completion>& out) {
  const auto n_prompts = static_cast<std::int64_t>(prompts.size());
  const std::vector<std::int64_t>& limits = params.sequence_limits;
  R1_REQUIRE(limits.empty() || static_cast<std::int64_t>(limits.size()) == n_prompts * samples_per_prompt, "generate: ",
             limits.size(), " sequence_limits for ", n_prompts * samples_per_prompt, " sequences (", n_prompts,
             " prompts x ", samples_per_prompt, " samples)");
  out.assign(static_cast<std::size_t>(n_prompts * samples_per_prompt), Completion{});
  std::vector<Sequence> seqs;
  for (std::int64_t p = 0; p < n_prompts; ++p) {
    const auto len = static_cast<std::int64_t>(prompts[static_cast<std::size_t>(p)].size());
    R1_REQUIRE(len >= 1 && len < c.max_seq_len, "generate: prompt ", p, " has ", len, " tokens; a prompt needs 1 to ",
               c.max_seq_len - 1, " ([model] max_seq_len - 1) to leave room for a new token");
    for (std::int64_t s = 0; s < samples_per_prompt; ++s) {
      const auto i = static_cast<std::size_t>(p * samples_per_prompt + s);
      const std::int64_t limit = limits.empty() ? params.max_new_tokens : std::min(params.max_new_tokens, limits[i]);
      R1_REQUIRE(limit >= 1, "generate: sequence_limits[", i, "] = ", limits.empty() ? 0 : limits[i], " must be >= 1");
      Completion& comp = out[i];
      comp.prompt_index = p;
      comp.sample_index = s;
      seqs.push_back({&comp, static_cast<std::uint64_t>(first_prompt_index + p), std::min(limit, c.max_seq_len - len)});
    }
  }
  return seqs;
}

// One prefill pass over distinct prompts (continuous batching): their cache rows and last-position logits,
// kept while some of their samples wait for a slot.
struct PrefillPass {
  KvCache cache;
  Tensor logits;  // f32 [prompts, V]
};

// A prompt's prefill as its samples take slots: its row of a pass, its routing (Completion::experts of the
// prompt's tokens) and how many of its samples have no slot yet.
struct Prefilled {
  std::shared_ptr<const PrefillPass> pass;
  std::int64_t row = 0;
  std::vector<std::int16_t> experts;
  std::int64_t unplaced = 0;
};

// The engine of one generate() call: the queue of sequences, the cache slots and what each slot holds (null:
// a slot whose sequence finished), and one pass per tick (generate()'s comment).
class Engine {
 public:
  Engine(const Model& model, const Prompts& prompts, std::vector<Sequence>& seqs, const SamplingParams& params,
         std::int64_t samples_per_prompt, std::int64_t max_batch, GenerateStats& stats)
      : model_(model), ctx_(model.params().context()), params_(params), opts_(sample_options(params)),
        prompts_(prompts), seqs_(seqs), samples_(samples_per_prompt), max_batch_(max_batch), lockstep_(model, ctx_),
        recorder_(model, params.record_experts), graphed_(model, opts_, recorder_), stats_(stats) {}

  void run() {
    while (lockstep_.anyone(!slots_.empty() || next_ < seqs_.size())) {
      const bool passed = params_.batching == Batching::continuous ? admit_continuous() : admit_static();
      compact();
      if (passed) continue;
      if (!slots_.empty())
        decode();
      else if (lockstep_.idle(model_))
        ++stats_.idle_passes;
    }
    stats_.graph_captures = graphed_.captures;
  }

 private:
  const std::vector<std::int32_t>& prompt_of(const Sequence& s) const {
    return prompts_[static_cast<std::size_t>(s.out->prompt_index)];
  }
  // The cache rows a sequence needs: its prompt and every generated token but the last (never fed back).
  std::int64_t rows_needed(const Sequence& s) const { return static_cast<std::int64_t>(prompt_of(s).size()) + s.limit - 1; }

  // Draws the first or next token of `live` (in slots `at`) from their logits rows and frees the slots of
  // those that finish.
  void draw(const std::vector<Sequence*>& live, const std::vector<std::size_t>& at, const Tensor& logits) {
    Draws d(ctx_, static_cast<std::int64_t>(live.size()));
    {
      const kernels::ProfileRegion region(ctx_, "sample");
      d.draw(ctx_, logits, ctx_.to_here(uniforms(live, params_.seed)), opts_);
    }
    finish(live, at, d);
  }
  void finish(const std::vector<Sequence*>& live, const std::vector<std::size_t>& at, const Draws& d) {
    const std::vector<std::int32_t> keep = record(live, d, params_.stop_ids);
    std::vector<bool> goes_on(live.size(), false);
    for (std::int32_t i : keep) goes_on[static_cast<std::size_t>(i)] = true;
    for (std::size_t i = 0; i < live.size(); ++i)
      if (!goes_on[i]) slots_[at[i]] = nullptr;
  }

  bool admit_static();
  bool admit_continuous();
  void prefill_prompts(const std::vector<std::int64_t>& prompt_ids);
  void place(const std::vector<std::size_t>& free, std::size_t n);
  void decode();
  void compact();

  const Model& model_;
  const kernels::Context& ctx_;
  const SamplingParams& params_;
  const kernels::SampleOptions opts_;
  const Prompts& prompts_;
  std::vector<Sequence>& seqs_;
  std::size_t next_ = 0;  // the queue: seqs_[next_ ..] wait for a slot
  std::int64_t samples_, max_batch_;
  const Lockstep lockstep_;
  const RoutingRecorder recorder_;
  GraphedDecode graphed_;
  std::optional<KvCache> cache_;
  std::vector<Sequence*> slots_;              // the sequence in each cache slot; null: free
  std::map<std::int64_t, Prefilled> prefilled_;  // by prompt index
  GenerateStats& stats_;
};

// Static batching: once the last batch is done, the next max_batch sequences are prefilled into a fresh cache
// sized for the longest of them (every sample prefilled on its own).
bool Engine::admit_static() {
  if (!slots_.empty() || next_ == seqs_.size()) return false;
  const std::size_t n = std::min(seqs_.size() - next_, static_cast<std::size_t>(max_batch_));
  Prompts batch;
  std::vector<std::int64_t> fed;
  std::vector<std::size_t> at;
  std::int64_t max_len = 0, S = 0;
  for (std::size_t i = 0; i < n; ++i) {
    Sequence& s = seqs_[next_ + i];
    slots_.push_back(&s);
    at.push_back(i);
    batch.push_back(prompt_of(s));
    fed.push_back(static_cast<std::int64_t>(batch.back().size()));
    S = std::max(S, fed.back());
    max_len = std::max(max_len, rows_needed(s));
  }
  next_ += n;
  graphed_.reset();
  cache_ = model_.make_kv_cache(static_cast<std::int64_t>(n), max_len);
  const Tensor experts = recorder_.buffer(ctx_, static_cast<std::int64_t>(n) * S);
  const Tensor logits = model_.prefill(*cache_, batch, experts);
  ++stats_.prefills;
  stats_.prefilled += static_cast<std::int64_t>(n);
  const std::vector<Sequence*> live = slots_;
  recorder_.append(experts, live, S, fed);
  draw(live, at, logits);
  return true;
}

// Continuous batching: free slots take the next sequences of the queue. Their prompts not prefilled yet run
// in one prefill pass (the tick's pass); a second round that would need another pass waits for the next
// tick, while samples of prompts already prefilled take slots without one.
bool Engine::admit_continuous() {
  if (next_ == seqs_.size()) return false;
  if (!cache_) {  // every slot sized for the longest sequence still queued
    std::int64_t max_len = 0;
    for (std::size_t i = next_; i < seqs_.size(); ++i) max_len = std::max(max_len, rows_needed(seqs_[i]));
    const std::size_t n = std::min(seqs_.size() - next_, static_cast<std::size_t>(max_batch_));
    graphed_.reset();
    cache_ = model_.make_kv_cache(static_cast<std::int64_t>(n), max_len);
    slots_.assign(n, nullptr);
  }
  bool passed = false;
  for (;;) {
    std::vector<std::size_t> free;
    for (std::size_t i = 0; i < slots_.size(); ++i)
      if (slots_[i] == nullptr) free.push_back(i);
    const std::size_t n = std::min(free.size(), seqs_.size() - next_);
    if (n == 0) break;
    std::vector<std::int64_t> missing;  // prompts of the admitted sequences without a prefill (the queue is prompt-major)
    for (std::size_t i = next_; i < next_ + n; ++i) {
      const std::int64_t p = seqs_[i].out->prompt_index;
      if (!prefilled_.contains(p) && (missing.empty() || missing.back() != p)) missing.push_back(p);
    }
    if (!missing.empty()) {
      if (passed) break;
      prefill_prompts(missing);
      passed = true;
    }
    place(free, n);
  }
  return passed;
}

void Engine::prefill_prompts(const std::vector<std::int64_t>& prompt_ids) {
  auto pass = std::make_shared<PrefillPass>();
  Prompts batch;
  std::int64_t S = 0;
  for (std::int64_t p : prompt_ids) {
    batch.push_back(prompts_[static_cast<std::size_t>(p)]);
    S = std::max(S, static_cast<std::int64_t>(batch.back().size()));
  }
  const auto m = static_cast<std::int64_t>(batch.size());
  pass->cache = model_.make_kv_cache(m, S);
  const Tensor experts = recorder_.buffer(ctx_, m * S);
  pass->logits = model_.prefill(pass->cache, batch, experts);
  ++stats_.prefills;
  stats_.prefilled += m;
  const Tensor routing = recorder_.on() ? on_host(experts) : Tensor{};
  for (std::int64_t i = 0; i < m; ++i) {
    Prefilled& e = prefilled_[prompt_ids[static_cast<std::size_t>(i)]];
    e = Prefilled{pass, i, {}, samples_};
    if (recorder_.on())
      recorder_.append_rows(routing, i * S, static_cast<std::int64_t>(batch[static_cast<std::size_t>(i)].size()), e.experts);
  }
}

// The next n queued sequences into slots free[0 .. n): each slot's cache rows [0, prompt length) copied from
// its prompt's prefill (the rows past them are stale and never read: decode attends to `lengths` rows), its
// first token drawn from the prompt's last-position logits.
void Engine::place(const std::vector<std::size_t>& free, std::size_t n) {
  std::vector<Sequence*> live;
  Tensor logits;
  for (std::size_t i = 0; i < n; ++i) {
    Sequence& s = seqs_[next_ + i];
    const auto it = prefilled_.find(s.out->prompt_index);
    Prefilled& e = it->second;
    const std::size_t slot = free[i];
    const auto len = static_cast<std::int64_t>(prompt_of(s).size());
    const auto rows = [len](const Tensor& t, std::int64_t b) {  // [B, L, W] -> slot b's first len rows [len, W]
      return t.slice(b, b + 1).view({t.dim(1), t.dim(2)}).slice(0, len);
    };
    const std::vector<Tensor> from = e.pass->cache.tensors(), to = cache_->tensors();
    for (std::size_t t = 0; t < to.size(); ++t) copy(rows(to[t], static_cast<std::int64_t>(slot)), rows(from[t], e.row));
    cache_->lengths[slot] = static_cast<std::int32_t>(len);
    if (!logits.defined()) logits = ctx_.empty({static_cast<std::int64_t>(n), e.pass->logits.dim(1)}, DType::f32);
    copy(logits.slice(static_cast<std::int64_t>(i), static_cast<std::int64_t>(i) + 1), e.pass->logits.slice(e.row, e.row + 1));
    s.out->experts.insert(s.out->experts.end(), e.experts.begin(), e.experts.end());
    slots_[slot] = &s;
    live.push_back(&s);
    if (--e.unplaced == 0) prefilled_.erase(it);
  }
  next_ += n;
  draw(live, std::vector<std::size_t>(free.begin(), free.begin() + static_cast<std::ptrdiff_t>(n)), logits);
}

// One decode step over every slot (all live: compact() ran).
void Engine::decode() {
  std::vector<std::int32_t> next;
  std::vector<std::size_t> at;
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    R1_CHECK(slots_[i] != nullptr, "decode: slot ", i, " holds no sequence");
    next.push_back(slots_[i]->out->tokens.back());
    at.push_back(i);
  }
  ++stats_.decode_steps;
  stats_.slot_steps += static_cast<std::int64_t>(slots_.size());
  const std::vector<Sequence*> live = slots_;
  if (params_.cuda_graphs && !kernels::profile::enabled() && model_.decodes_on_device(cache_->slots())) {
    graphed_.step(*cache_, next, uniforms(live, params_.seed));
    recorder_.append(graphed_.experts, live, 1, std::vector<std::int64_t>(live.size(), 1));
    finish(live, at, graphed_.draws);
  } else {
    const Tensor experts = recorder_.buffer(ctx_, cache_->slots());
    const Tensor logits = model_.decode(*cache_, next, experts);
    recorder_.append(experts, live, 1, std::vector<std::int64_t>(live.size(), 1));
    draw(live, at, logits);
  }
}

// Drops the free slots (static batching: always; continuous: once the queue is empty, as nothing will refill
// them) so that finished sequences stop costing compute; the cache goes with the last one.
void Engine::compact() {
  if (std::none_of(slots_.begin(), slots_.end(), [](const Sequence* s) { return s == nullptr; })) return;
  if (params_.batching == Batching::continuous && next_ < seqs_.size()) return;
  std::vector<std::int32_t> keep;
  std::vector<Sequence*> kept;
  for (std::size_t i = 0; i < slots_.size(); ++i)
    if (slots_[i] != nullptr) {
      keep.push_back(static_cast<std::int32_t>(i));
      kept.push_back(slots_[i]);
    }
  graphed_.reset();  // its slots and buffers are about to change
  if (keep.empty())
    cache_.reset();
  else
    model_.keep_slots(*cache_, keep);
  slots_ = std::move(kept);
}
}  // namespace

std::vector<Completion> generate(const Model& model, const Prompts& prompts, std::int64_t samples_per_prompt,
                                 const SamplingParams& params, std::int64_t max_batch, std::int64_t first_prompt_index,
                                 GenerateStats* stats) {
  validate(params);
  R1_REQUIRE(samples_per_prompt >= 1 && max_batch >= 1 && first_prompt_index >= 0, "generate: samples_per_prompt ",
             samples_per_prompt, " and max_batch ", max_batch, " must be >= 1, first_prompt_index ", first_prompt_index,
             " >= 0");
  std::vector<Completion> out;
  std::vector<Sequence> seqs = sequences(model.config(), prompts, samples_per_prompt, params, first_prompt_index, out);
  GenerateStats ran;
  Engine(model, prompts, seqs, params, samples_per_prompt, max_batch, ran).run();
  if (stats != nullptr) *stats = ran;
  return out;
}

}  // namespace r1
