#include "generate/engine.hpp"

#include <algorithm>
#include <deque>
#include <map>
#include <numeric>
#include <memory>
#include <optional>

#include "core/error.hpp"
#include "generate/kv_blocks.hpp"
#include "generate/passes.hpp"
#include "kernels/mla_decode.hpp"
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

// One prefill pass over distinct prompts and resumed sequences (continuous batching): their cache rows and
// last-position logits, kept while some of their sequences wait for a slot.
struct PrefillPass {
  KvCache cache;
  Tensor logits;          // f32 [rows, V]
  bool in_region = false;  // `cache` views the paged cache's prefill region (a mixed chunked prefill)
};

// A prompt's prefill as its samples take slots (or a preempted sequence's, re-prefilled for itself): its row
// of a pass, its routing (Completion::experts of the prompt's tokens; none for a resumed sequence, whose rows
// were recorded when first fed) and how many of its sequences have no slot yet.
struct Prefilled {
  std::shared_ptr<const PrefillPass> pass;
  std::int64_t row = 0;
  std::vector<std::int16_t> experts;
  std::int64_t unplaced = 0;
};

// A prefill in passes of at most SamplingParams::prefill_chunk tokens (continuous batching): each pass runs
// the next tokens of its rows as rows of a decode pass over `pass`'s cache, each attending to the rows of
// its prompt before it. Mixed (`row_blocks` > 0): the rows live in the paged cache's prefill region, row r in
// its blocks [r row_blocks, (r + 1) row_blocks), and each chunk runs in the same pass as a decode step of
// the running sequences; otherwise in a cache of its own, its passes alternating with decode steps.
struct ChunkedPrefill {
  std::shared_ptr<PrefillPass> pass;
  std::vector<std::int64_t> prompt_ids;
  std::vector<Sequence*> resumed;
  std::vector<std::vector<std::int32_t>> rows;      // the prompts' tokens, then the resumed sequences'
  std::vector<std::int64_t> done;                   // tokens of each row in the cache
  std::vector<std::vector<std::int16_t>> routing;   // per prompt: Completion::experts of its tokens
  std::int64_t row_blocks = 0;
  bool mixed() const { return row_blocks > 0; }
};

// The rows of one pass of a chunked prefill: its next tokens (at most `budget`), row after row, each with its
// position (the tokens of its row already cached) and its row's index.
struct ChunkRows {
  std::vector<std::int32_t> tokens, positions, row;
  std::vector<std::int32_t> last;  // the indices of the tokens that end their prompt row (their logits are kept)
};

// The engine of one generate() call: the queue of sequences, the cache slots and what each slot holds (null:
// a slot without a sequence), the paged cache's blocks, and one pass per tick (generate()'s comment).
class Engine {
 public:
  Engine(const Model& model, const Prompts& prompts, std::vector<Sequence>& seqs, const SamplingParams& params,
         std::int64_t samples_per_prompt, std::int64_t max_batch, GenerateStats& stats)
      : model_(model), ctx_(model.params().context()), params_(params), opts_(sample_options(params)),
        prompts_(prompts), samples_(samples_per_prompt), max_batch_(max_batch), lockstep_(model, ctx_),
        recorder_(model, params.record_experts), graphed_(model, opts_, recorder_), stats_(stats) {
    for (Sequence& s : seqs) queue_.push_back(&s);
  }

  void run() {
    while (lockstep_.anyone(running() || !queue_.empty())) {
      const bool passed = params_.batching == Batching::continuous ? admit_continuous() : admit_static();
      compact();
      if (passed) continue;
      if (running() || (chunked_ && chunked_->mixed()))
        decode();
      else if (lockstep_.idle(model_))
        ++stats_.idle_passes;
    }
    stats_.graph_captures = graphed_.captures;
  }

 private:
  bool running() const {
    return std::any_of(slots_.begin(), slots_.end(), [](const Sequence* s) { return s != nullptr; });
  }
  const std::vector<std::int32_t>& prompt_of(const Sequence& s) const {
    return prompts_[static_cast<std::size_t>(s.out->prompt_index)];
  }
  // The cache rows a sequence needs: its prompt and every generated token but the last (never fed back).
  std::int64_t rows_needed(const Sequence& s) const { return static_cast<std::int64_t>(prompt_of(s).size()) + s.limit - 1; }
  // The rows it brings when it takes a slot: its prompt, and for a preempted sequence what it had fed.
  std::int64_t rows_brought(const Sequence& s) const {
    const auto fed = static_cast<std::int64_t>(s.out->tokens.size());
    return static_cast<std::int64_t>(prompt_of(s).size()) + std::max<std::int64_t>(fed, 1) - 1;
  }
  // The blocks it takes at admission: those rows and its next token's.
  std::int64_t entry_blocks(const Sequence& s) const {
    return blocks_->blocks_for(std::min(rows_brought(s) + 1, rows_needed(s)));
  }

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
      if (live[i] != nullptr && !goes_on[i]) {
        slots_[at[i]] = nullptr;
        if (blocks_) blocks_->release(*cache_, at[i]);
      }
  }

  bool admit_static();
  bool admit_continuous();
  void make_cache();
  std::size_t admissible(std::size_t free_slots) const;
  Prompts prefill_rows(const std::vector<std::int64_t>& prompt_ids, const std::vector<Sequence*>& resumed) const;
  void prefill(const std::vector<std::int64_t>& prompt_ids, const std::vector<Sequence*>& resumed);
  void start_chunked(const std::vector<std::int64_t>& prompt_ids, const std::vector<Sequence*>& resumed, bool mixed);
  bool chunk_step();
  ChunkRows next_chunk();
  bool chunk_done(const ChunkRows& rows, const Tensor& logits, std::int64_t first_logits, std::int64_t first,
                  const Tensor& routing);
  bool region_busy() const;
  std::size_t region_admissible(std::size_t n) const;
  std::size_t ready_prefix(std::size_t n) const;
  bool needs_row(const Sequence& s, const std::vector<std::int64_t>& seen) const;
  std::int64_t agreed_pool(std::int64_t pool) const;
  void mixed_step();
  void register_pass(const std::shared_ptr<const PrefillPass>& pass, const std::vector<std::int64_t>& prompt_ids,
                     const std::vector<Sequence*>& resumed, std::vector<std::vector<std::int16_t>> routing);
  void place(const std::vector<std::size_t>& free, std::size_t n);
  void copy_rows(const Prefilled& e, std::size_t slot, std::int64_t len);
  void make_room();
  void preempt(std::size_t slot);
  void decode();
  void compact();

  const Model& model_;
  const kernels::Context& ctx_;
  const SamplingParams& params_;
  const kernels::SampleOptions opts_;
  const Prompts& prompts_;
  std::deque<Sequence*> queue_;  // waiting for a slot; preempted sequences go back to its head
  std::int64_t samples_, max_batch_;
  const Lockstep lockstep_;
  const RoutingRecorder recorder_;
  GraphedDecode graphed_;
  std::optional<KvCache> cache_;
  std::optional<KvBlocks> blocks_;            // a paged cache's blocks (continuous batching, kv_block_size > 0)
  std::vector<Sequence*> slots_;              // the sequence in each cache slot; null: free
  std::vector<std::uint64_t> admitted_;       // when each slot's sequence took it (preemption takes the newest)
  std::uint64_t admissions_ = 0;
  std::map<std::int64_t, Prefilled> prefilled_;  // by prompt index
  std::map<const Sequence*, Prefilled> resumed_;  // preempted sequences' re-prefills
  std::optional<ChunkedPrefill> chunked_;         // a prefill in chunks under way
  bool chunk_ran_ = false;                        // the last tick ran one of its (unmixed) chunks
  Tensor zero_;                                   // i32 [1] 0: the start row of a paged slot's copy
  GenerateStats& stats_;
};

// Static batching: once the last batch is done, the next max_batch sequences are prefilled into a fresh cache
// sized for the longest of them (every sample prefilled on its own).
bool Engine::admit_static() {
  if (!slots_.empty() || queue_.empty()) return false;
  const std::size_t n = std::min(queue_.size(), static_cast<std::size_t>(max_batch_));
  Prompts batch;
  std::vector<std::int64_t> fed;
  std::vector<std::size_t> at;
  std::int64_t max_len = 0, S = 0;
  for (std::size_t i = 0; i < n; ++i) {
    Sequence& s = *queue_[i];
    slots_.push_back(&s);
    at.push_back(i);
    batch.push_back(prompt_of(s));
    fed.push_back(static_cast<std::int64_t>(batch.back().size()));
    S = std::max(S, fed.back());
    max_len = std::max(max_len, rows_needed(s));
  }
  queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
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

// The cache of continuous batching, for min(queue, max_batch) slots of the longest queued sequence's rows:
// contiguous, or paged over a pool of kv_pool_blocks() blocks and the scratch block. A paged cache with
// chunked prefill also holds the prefill region (max(max_len, 4 prefill_chunk) tokens of blocks, outside
// the pool's budget; taken from the auto budget), where a chunked prefill mixed into decode steps writes.
void Engine::make_cache() {
  std::int64_t max_len = 0;
  for (const Sequence* s : queue_) max_len = std::max(max_len, rows_needed(*s));
  const auto n = static_cast<std::int64_t>(std::min(queue_.size(), static_cast<std::size_t>(max_batch_)));
  graphed_.reset();
  slots_.assign(static_cast<std::size_t>(n), nullptr);
  admitted_.assign(slots_.size(), 0);
  if (params_.kv_block_size == 0) {
    cache_ = model_.make_kv_cache(n, max_len);
    return;
  }
  const std::int64_t bs = std::min(params_.kv_block_size, max_len);
  std::int64_t bytes_per_token = 0;
  for (const Tensor& t : model_.make_kv_cache(1, 1).tensors())
    bytes_per_token += t.dim(2) * static_cast<std::int64_t>(dtype_size(t.dtype()));
  SamplingParams sized = params_;
  sized.kv_block_size = bs;
  const std::int64_t per = (max_len + bs - 1) / bs;  // a slot's blocks: no prefill has more rows than slots
  const std::int64_t region =
      params_.prefill_chunk > 0 ? std::min((std::max(max_len, 4 * params_.prefill_chunk) + bs - 1) / bs, n * per) : 0;
  const std::int64_t pool = agreed_pool(kv_pool_blocks(ctx_, sized, n, max_len, bytes_per_token, region));
  cache_ = model_.make_paged_kv_cache(n, max_len, bs, pool + region + 1);
  blocks_.emplace(*cache_, region);
  stats_.pool_blocks = pool;
  stats_.block_size = bs;
  zero_ = ctx_.zeros({1}, DType::i32);
}

// The ranks of a pipeline or a TP group run every pass together and must take the same decisions: they take
// the smallest of their pools (the auto budget reads each rank's own free memory and layers).
std::int64_t Engine::agreed_pool(std::int64_t pool) const {
  for (parallel::Communicator* g : {model_.pipeline_group(), model_.tensor_group()}) {
    if (g == nullptr || g->size() < 2) continue;
    Tensor h = Tensor::host({1}, DType::f64);
    h.data<double>()[0] = static_cast<double>(pool);
    const Tensor buf = ctx_.to_here(h);
    g->all_reduce(buf, parallel::ReduceOp::min);
    g->wait();
    copy(h, buf);
    pool = static_cast<std::int64_t>(h.data<double>()[0]);
  }
  return pool;
}

// How many sequences at the queue's head take a slot now: as many as there are free slots, and with a paged
// cache as long as the free blocks cover each one's entry_blocks (in queue order: none overtakes another).
std::size_t Engine::admissible(std::size_t free_slots) const {
  const std::size_t n = std::min(free_slots, queue_.size());
  if (!blocks_) return n;
  std::int64_t left = blocks_->free_blocks();
  for (std::size_t i = 0; i < n; ++i) {
    left -= entry_blocks(*queue_[i]);
    if (left < 0) return i;
  }
  return n;
}

// Continuous batching: free slots take the next sequences of the queue. Their prompts not prefilled yet,
// and the preempted sequences among them, run in one prefill pass (the tick's pass); a second round that
// would need another pass waits for the next tick, while samples of prompts already prefilled take slots
// without one.
bool Engine::admit_continuous() {
  if (queue_.empty()) return false;
  if (!cache_) make_cache();
  if (chunked_ && chunk_ran_ && running()) {  // a decode step between two chunks
    chunk_ran_ = false;
    return false;
  }
  bool passed = false;
  for (;;) {
    std::vector<std::size_t> free;
    for (std::size_t i = 0; i < slots_.size(); ++i)
      if (slots_[i] == nullptr) free.push_back(i);
    std::size_t n = admissible(free.size());
    if (n == 0) break;
    const bool mixed = blocks_ && blocks_->region_blocks() > 0 && !chunked_ && region_admissible(n) > 0;
    if (mixed) n = region_admissible(n);
    std::vector<std::int64_t> missing;  // prompts of the admitted fresh sequences without a prefill
    std::vector<Sequence*> resumed;
    for (std::size_t i = 0; i < n; ++i) {
      Sequence* s = queue_[i];
      const std::int64_t p = s->out->prompt_index;
      if (!s->out->tokens.empty()) {
        if (!resumed_.contains(s)) resumed.push_back(s);
      }
      else if (!prefilled_.contains(p) && std::find(missing.begin(), missing.end(), p) == missing.end())
        missing.push_back(p);
    }
    if (!missing.empty() || !resumed.empty()) {
      // Mixed, the prefill's chunks run in the decode passes: the sequences ahead of the first that needs it
      // take their slots now rather than wait for it.
      if ((chunked_ && chunked_->mixed()) || mixed) {
        if (const std::size_t ready = ready_prefix(n); ready > 0) {
          place(free, ready);
          continue;
        }
        if (mixed) start_chunked(missing, resumed, true);
        break;
      }
      if (passed) break;
      passed = true;
      if (params_.prefill_chunk == 0) {
        prefill(missing, resumed);
      } else {  // the chunked prefill under way (of these sequences, or of those before a preemption)
        if (!chunked_) start_chunked(missing, resumed, false);
        chunk_ran_ = true;
        if (!chunk_step()) break;
        continue;
      }
    }
    place(free, n);
  }
  return passed;
}

// The token rows of a prefill over the prompts `prompt_ids` and the preempted sequences `resumed` (each its
// prompt and every token it had fed, so that it goes on with its last drawn token).
Prompts Engine::prefill_rows(const std::vector<std::int64_t>& prompt_ids, const std::vector<Sequence*>& resumed) const {
  Prompts batch;
  for (std::int64_t p : prompt_ids) batch.push_back(prompts_[static_cast<std::size_t>(p)]);
  for (const Sequence* s : resumed) {
    batch.push_back(prompt_of(*s));
    batch.back().insert(batch.back().end(), s->out->tokens.begin(), s->out->tokens.end() - 1);
  }
  return batch;
}

// One prefill pass of the training forward over prefill_rows().
void Engine::prefill(const std::vector<std::int64_t>& prompt_ids, const std::vector<Sequence*>& resumed) {
  auto pass = std::make_shared<PrefillPass>();
  const Prompts batch = prefill_rows(prompt_ids, resumed);
  std::int64_t S = 0;
  for (const auto& b : batch) S = std::max(S, static_cast<std::int64_t>(b.size()));
  const auto m = static_cast<std::int64_t>(batch.size());
  pass->cache = model_.make_kv_cache(m, S);
  const Tensor experts = recorder_.buffer(ctx_, m * S);
  pass->logits = model_.prefill(pass->cache, batch, experts);
  ++stats_.prefills;
  std::vector<std::vector<std::int16_t>> routing(prompt_ids.size());
  if (recorder_.on()) {
    const Tensor host = on_host(experts);
    for (std::size_t i = 0; i < prompt_ids.size(); ++i)
      recorder_.append_rows(host, static_cast<std::int64_t>(i) * S, static_cast<std::int64_t>(batch[i].size()), routing[i]);
  }
  register_pass(pass, prompt_ids, resumed, std::move(routing));
}

// A finished prefill's prompts and resumed sequences, ready for their slots (`routing`: per prompt).
void Engine::register_pass(const std::shared_ptr<const PrefillPass>& pass, const std::vector<std::int64_t>& prompt_ids,
                           const std::vector<Sequence*>& resumed, std::vector<std::vector<std::int16_t>> routing) {
  stats_.prefilled += static_cast<std::int64_t>(prompt_ids.size());
  stats_.resumed += static_cast<std::int64_t>(resumed.size());
  for (std::size_t i = 0; i < prompt_ids.size(); ++i)
    prefilled_[prompt_ids[i]] = Prefilled{pass, static_cast<std::int64_t>(i), std::move(routing[i]), samples_};
  for (std::size_t i = 0; i < resumed.size(); ++i)
    resumed_[resumed[i]] = Prefilled{pass, static_cast<std::int64_t>(prompt_ids.size() + i), {}, 1};
}

// A chunked prefill's cache: of its own, or (mixed) the prefill region's first m x row_blocks blocks seen as
// a contiguous cache of m slots of row_blocks blocks, which is what copy_rows() reads.
void Engine::start_chunked(const std::vector<std::int64_t>& prompt_ids, const std::vector<Sequence*>& resumed, bool mixed) {
  ChunkedPrefill c{std::make_shared<PrefillPass>(), prompt_ids, resumed, prefill_rows(prompt_ids, resumed), {}, {}};
  std::int64_t S = 0;
  for (const auto& r : c.rows) S = std::max(S, static_cast<std::int64_t>(r.size()));
  const auto m = static_cast<std::int64_t>(c.rows.size());
  if (mixed) {
    c.row_blocks = blocks_->blocks_for(S);
    R1_CHECK(m * c.row_blocks <= blocks_->region_blocks(), "generate: a mixed chunked prefill beyond the prefill region");
    KvCache& v = c.pass->cache;
    v.max_len = c.row_blocks * blocks_->block_size();
    v.layers = cache_->layers;
    v.gqa_layers = cache_->gqa_layers;
    v.lengths.assign(static_cast<std::size_t>(m), 0);
    v.block_table = Tensor{};
    std::vector<Tensor> region;
    for (const Tensor& t : cache_->tensors())
      region.push_back(t.slice(blocks_->region_base(), blocks_->region_base() + m * c.row_blocks).view({m, v.max_len, t.dim(2)}));
    v.set_tensors(region);
    c.pass->in_region = true;
  } else {
    c.pass->cache = model_.make_kv_cache(m, S);
  }
  c.pass->logits = ctx_.empty({m, model_.config().vocab_size}, DType::f32);
  c.done.assign(c.rows.size(), 0);
  c.routing.resize(prompt_ids.size());
  chunked_ = std::move(c);
}

// The next prefill_chunk tokens of the chunked prefill, row after row.
ChunkRows Engine::next_chunk() {
  ChunkedPrefill& c = *chunked_;
  ChunkRows out;
  for (std::size_t r = 0; r < c.rows.size(); ++r)
    for (; c.done[r] < static_cast<std::int64_t>(c.rows[r].size()) &&
           static_cast<std::int64_t>(out.tokens.size()) < params_.prefill_chunk;
         ++c.done[r]) {
      if (c.done[r] + 1 == static_cast<std::int64_t>(c.rows[r].size()))
        out.last.push_back(static_cast<std::int32_t>(out.tokens.size()));
      out.tokens.push_back(c.rows[r][static_cast<std::size_t>(c.done[r])]);
      out.positions.push_back(static_cast<std::int32_t>(c.done[r]));
      out.row.push_back(static_cast<std::int32_t>(r));
    }
  return out;
}

// After a pass ran `rows` as its rows first, first + 1, ...: each prompt's routing recorded (`routing`: the
// pass's on the host), the logits of each row's last token kept (`logits` rows first_logits, first_logits + 1,
// ... are those of rows.last); the prefill registered once every row is cached. Returns whether it has finished.
bool Engine::chunk_done(const ChunkRows& rows, const Tensor& logits, std::int64_t first_logits, std::int64_t first,
                        const Tensor& routing) {
  ChunkedPrefill& c = *chunked_;
  if (recorder_.on())
    for (std::size_t i = 0; i < rows.tokens.size(); ++i) {
      const auto r = static_cast<std::size_t>(rows.row[i]);
      if (r < c.prompt_ids.size()) recorder_.append_rows(routing, first + static_cast<std::int64_t>(i), 1, c.routing[r]);
    }
  for (std::size_t k = 0; k < rows.last.size(); ++k) {
    const std::int64_t r = rows.row[static_cast<std::size_t>(rows.last[k])], at = first_logits + static_cast<std::int64_t>(k);
    copy(c.pass->logits.slice(r, r + 1), logits.slice(at, at + 1));
  }
  for (std::size_t r = 0; r < c.rows.size(); ++r)
    if (c.done[r] < static_cast<std::int64_t>(c.rows[r].size())) return false;
  register_pass(c.pass, c.prompt_ids, c.resumed, std::move(c.routing));
  chunked_.reset();
  return true;
}

// One pass of an unmixed chunked prefill: the chunk's tokens as the rows of a decode pass whose rows point at
// their prompt's slot of the prefill cache (a block table of one block of S rows per slot) at their own
// positions. Returns whether the prefill has finished.
bool Engine::chunk_step() {
  ChunkedPrefill& c = *chunked_;
  const ChunkRows rows = next_chunk();
  KvCache view;  // the prefill cache, addressed by token rows
  view.lengths = rows.positions;
  view.table = rows.row;
  const auto n = static_cast<std::int64_t>(rows.tokens.size());
  view.max_len = view.block_size = c.pass->cache.max_len;
  view.layers = c.pass->cache.layers;
  view.gqa_layers = c.pass->cache.gqa_layers;
  view.block_table = ctx_.empty({n, 1}, DType::i32);
  view.upload_table();
  view.set_tensors(c.pass->cache.tensors());
  const Tensor experts = recorder_.buffer(ctx_, n);
  const std::vector<std::int32_t> wanted = rows.last.empty() ? std::vector<std::int32_t>{0} : rows.last;
  const Tensor logits = model_.decode(view, rows.tokens, experts, &wanted);
  ++stats_.prefills;
  return chunk_done(rows, logits, 0, 0, recorder_.on() ? on_host(experts) : Tensor{});
}

// A prefill of new rows may go to the prefill region when no earlier prefill's rows still wait there for
// their slots: of the n sequences admissible, those up to the first whose row would not fit (rows of the
// longest one's blocks each) or, with the region in use, up to the first that needs a row. 0: the head
// sequence needs a row the region cannot take now (the prefill then runs in a cache of its own).
std::size_t Engine::region_admissible(std::size_t n) const {
  const bool busy = region_busy();
  std::vector<std::int64_t> seen;
  std::int64_t rows = 0, longest = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const Sequence& s = *queue_[i];
    const bool fresh = s.out->tokens.empty();
    const std::int64_t p = s.out->prompt_index;
    if (!needs_row(s, seen)) continue;
    if (busy) return i;
    const std::int64_t len = fresh ? static_cast<std::int64_t>(prompt_of(s).size()) : rows_brought(s);
    const std::int64_t widest = std::max(longest, len);
    if ((rows + 1) * blocks_->blocks_for(widest) > blocks_->region_blocks()) return i;
    ++rows;
    longest = widest;
    if (fresh) seen.push_back(p);
  }
  return n;
}

// Whether a queued sequence needs a prefill row: a preempted one without its re-prefill, or a fresh one whose
// prompt is neither prefilled nor among `seen` (the prompts already taken into this prefill).
bool Engine::needs_row(const Sequence& s, const std::vector<std::int64_t>& seen) const {
  if (!s.out->tokens.empty()) return !resumed_.contains(&s);
  const std::int64_t p = s.out->prompt_index;
  return !prefilled_.contains(p) && std::find(seen.begin(), seen.end(), p) == seen.end();
}

// The sequences at the queue's head, of the first n, whose rows are ready (none needs a prefill row).
std::size_t Engine::ready_prefix(std::size_t n) const {
  for (std::size_t i = 0; i < n; ++i)
    if (needs_row(*queue_[i], {})) return i;
  return n;
}

bool Engine::region_busy() const {
  const auto in_region = [](const auto& kv) { return kv.second.pass->in_region; };
  return std::any_of(prefilled_.begin(), prefilled_.end(), in_region) ||
         std::any_of(resumed_.begin(), resumed_.end(), in_region) || (chunked_ && chunked_->mixed());
}

// A decode step of the running sequences and the next chunk of the mixed chunked prefill in one pass: the
// pass's rows are the live slots (each through its own table row at its length) and then the chunk's tokens
// (each through its prefill row's region blocks at its position), so both read the weights once.
void Engine::mixed_step() {
  const ChunkRows chunk = next_chunk();
  const std::int64_t per = cache_->blocks_per_slot();
  KvCache view;
  view.max_len = cache_->max_len;
  view.block_size = cache_->block_size;
  view.layers = cache_->layers;
  view.gqa_layers = cache_->gqa_layers;
  std::vector<Sequence*> live;
  std::vector<std::size_t> at;
  std::vector<std::int32_t> tokens;
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i] == nullptr) continue;
    live.push_back(slots_[i]);
    at.push_back(i);
    tokens.push_back(slots_[i]->out->tokens.back());
    view.lengths.push_back(cache_->lengths[i]);
    const auto row = cache_->table.begin() + static_cast<std::ptrdiff_t>(i * static_cast<std::size_t>(per));
    view.table.insert(view.table.end(), row, row + per);
  }
  const auto n_live = static_cast<std::int64_t>(live.size());
  tokens.insert(tokens.end(), chunk.tokens.begin(), chunk.tokens.end());
  view.lengths.insert(view.lengths.end(), chunk.positions.begin(), chunk.positions.end());
  for (std::int32_t r : chunk.row)
    for (std::int64_t j = 0; j < per; ++j)
      view.table.push_back(j < chunked_->row_blocks
                               ? static_cast<std::int32_t>(blocks_->region_base() + r * chunked_->row_blocks + j)
                               : blocks_->scratch());
  const auto n = static_cast<std::int64_t>(tokens.size());
  view.block_table = ctx_.empty({n, per}, DType::i32);
  view.upload_table();
  view.set_tensors(cache_->tensors());
  const Tensor experts = recorder_.buffer(ctx_, n);
  std::vector<std::int32_t> wanted(static_cast<std::size_t>(n_live));  // the live slots', then the chunk's last rows'
  std::iota(wanted.begin(), wanted.end(), 0);
  for (std::int32_t i : chunk.last) wanted.push_back(static_cast<std::int32_t>(n_live) + i);
  if (wanted.empty()) wanted.push_back(0);
  const Tensor logits = model_.decode(view, tokens, experts, &wanted);
  ++stats_.prefills;
  const Tensor routing = recorder_.on() ? on_host(experts) : Tensor{};  // one read-back for both kinds of rows
  if (n_live > 0) {
    ++stats_.decode_steps;
    ++stats_.mixed_steps;
    stats_.slot_steps += n_live;
    for (std::size_t slot : at) ++cache_->lengths[slot];
    if (recorder_.on())
      for (std::int64_t i = 0; i < n_live; ++i) recorder_.append_rows(routing, i, 1, live[static_cast<std::size_t>(i)]->out->experts);
  }
  chunk_done(chunk, logits, n_live, n_live, routing);
  if (n_live > 0) draw(live, at, logits.slice(0, n_live));
}

// Slot `slot`'s cache rows [0, len) from row e.row of its prefill pass (the rows past them are stale or the
// scratch block's and never read: decode attends to `lengths` rows); paged, through the slot's block table
// row (its blocks already given and uploaded).
void Engine::copy_rows(const Prefilled& e, std::size_t slot, std::int64_t len) {
  const auto rows = [len](const Tensor& t, std::int64_t b) {  // [B, L, W] -> slot b's first len rows [len, W]
    return t.slice(b, b + 1).view({t.dim(1), t.dim(2)}).slice(0, len);
  };
  const std::vector<Tensor> from = e.pass->cache.tensors(), to = cache_->tensors();
  const auto b = static_cast<std::int64_t>(slot);
  for (std::size_t t = 0; t < to.size(); ++t) {
    const Tensor src = rows(from[t], e.row);
    if (blocks_)
      kernels::kv_cache_write(ctx_, src.view({1, len, src.dim(1)}), zero_, to[t], cache_->block_table.slice(b, b + 1));
    else
      copy(rows(to[t], b), src);
  }
}

// The next n queued sequences into slots free[0 .. n): each slot's cache rows copied from its prefill, a
// fresh sequence's first token drawn from its prompt's last-position logits (a resumed one goes on with the
// last token it drew).
void Engine::place(const std::vector<std::size_t>& free, std::size_t n) {
  std::size_t fresh_n = 0;
  for (std::size_t i = 0; i < n; ++i) fresh_n += queue_[i]->out->tokens.empty() ? 1 : 0;
  if (blocks_) {
    for (std::size_t i = 0; i < n; ++i)
      R1_CHECK(blocks_->grow(*cache_, free[i], std::min(rows_brought(*queue_[i]) + 1, rows_needed(*queue_[i]))),
               "generate: admitted a sequence without the blocks it needs");
    blocks_->upload(*cache_);
  }
  std::vector<Sequence*> live;
  std::vector<std::size_t> at;
  Tensor logits;
  for (std::size_t i = 0; i < n; ++i) {
    Sequence& s = *queue_[i];
    const bool fresh = s.out->tokens.empty();
    const auto it = fresh ? prefilled_.find(s.out->prompt_index) : prefilled_.end();
    const auto rit = fresh ? resumed_.end() : resumed_.find(&s);
    Prefilled& e = fresh ? it->second : rit->second;
    const std::size_t slot = free[i];
    const std::int64_t len = rows_brought(s);
    copy_rows(e, slot, len);
    cache_->lengths[slot] = static_cast<std::int32_t>(len);
    if (fresh) {
      if (!logits.defined()) logits = ctx_.empty({static_cast<std::int64_t>(fresh_n), e.pass->logits.dim(1)}, DType::f32);
      const auto r = static_cast<std::int64_t>(live.size());
      copy(logits.slice(r, r + 1), e.pass->logits.slice(e.row, e.row + 1));
      s.out->experts.insert(s.out->experts.end(), e.experts.begin(), e.experts.end());
      live.push_back(&s);
      at.push_back(slot);
    }
    slots_[slot] = &s;
    admitted_[slot] = ++admissions_;
    if (--e.unplaced == 0) {
      if (fresh) prefilled_.erase(it);
      else resumed_.erase(rit);
    }
  }
  queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
  if (!live.empty()) draw(live, at, logits);
}

// A paged cache's room for this step's rows: oldest sequences first, each slot whose next row starts a
// block gets one; when none is free the newest sequence is preempted (itself, if it is the newest).
void Engine::make_room() {
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < slots_.size(); ++i)
    if (slots_[i] != nullptr) order.push_back(i);
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return admitted_[a] < admitted_[b]; });
  for (std::size_t slot : order) {
    if (slots_[slot] == nullptr) continue;  // preempted for an older one
    while (!blocks_->grow(*cache_, slot, cache_->lengths[slot] + 1)) {
      std::size_t newest = slot;
      for (std::size_t i = 0; i < slots_.size(); ++i)
        if (slots_[i] != nullptr && admitted_[i] > admitted_[newest]) newest = i;
      preempt(newest);
      if (newest == slot) break;
    }
  }
}

// Frees a running sequence's slot and blocks and puts it back at the head of the queue; it is re-prefilled
// (prompt and the tokens it had fed) when it takes a slot again, and its draws stay keyed by position.
void Engine::preempt(std::size_t slot) {
  queue_.push_front(slots_[slot]);
  slots_[slot] = nullptr;
  blocks_->release(*cache_, slot);
  ++stats_.preemptions;
}

// One decode step over every slot. A slot without a sequence (waiting for a chunked prefill or for blocks)
// runs from length 0 and draws nothing: it writes and reads only its row 0 (paged: the scratch block's), which
// a sequence taking the slot overwrites.
void Engine::decode() {
  if (blocks_) {
    make_room();
    blocks_->upload(*cache_);
    stats_.peak_blocks = blocks_->peak_used();
  }
  if (chunked_ && chunked_->mixed()) return mixed_step();
  const std::vector<Sequence*> live = slots_;
  std::vector<std::int32_t> next;
  std::vector<std::size_t> at;
  for (std::size_t i = 0; i < live.size(); ++i) {
    if (live[i] == nullptr) cache_->lengths[i] = 0;  // idle: its step writes and reads its row 0 only
    next.push_back(live[i] != nullptr ? live[i]->out->tokens.back() : 0);
    at.push_back(i);
    stats_.slot_steps += live[i] != nullptr ? 1 : 0;
  }
  ++stats_.decode_steps;
  const std::vector<std::int64_t> fed(live.size(), 1);
  if (params_.cuda_graphs && !kernels::profile::enabled() && model_.decodes_on_device(cache_->slots())) {
    graphed_.step(*cache_, next, uniforms(live, params_.seed));
    recorder_.append(graphed_.experts, live, 1, fed);
    finish(live, at, graphed_.draws);
  } else {
    const Tensor experts = recorder_.buffer(ctx_, cache_->slots());
    const Tensor logits = model_.decode(*cache_, next, experts);
    recorder_.append(experts, live, 1, fed);
    draw(live, at, logits);
  }
}

// Drops the free slots (static batching: always; continuous: once the queue is empty, as nothing will refill
// them) so that finished sequences stop costing compute; the cache goes with the last one.
void Engine::compact() {
  if (std::none_of(slots_.begin(), slots_.end(), [](const Sequence* s) { return s == nullptr; })) return;
  if (params_.batching == Batching::continuous && !queue_.empty()) return;
  std::vector<std::int32_t> keep;
  std::vector<Sequence*> kept;
  std::vector<std::uint64_t> order;
  for (std::size_t i = 0; i < slots_.size(); ++i)
    if (slots_[i] != nullptr) {
      keep.push_back(static_cast<std::int32_t>(i));
      kept.push_back(slots_[i]);
      order.push_back(admitted_.empty() ? 0 : admitted_[i]);
    }
  graphed_.reset();  // its slots and buffers are about to change
  if (keep.empty()) {
    cache_.reset();
    blocks_.reset();
  } else {
    model_.keep_slots(*cache_, keep);
    if (blocks_) blocks_->keep(keep);
  }
  slots_ = std::move(kept);
  admitted_ = std::move(order);
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
