// The pieces of the generation engine's passes that every batching mode shares (generate/engine.cpp): the
// sequences, a step's draws, the routing recorder, the expert-parallel lockstep and the CUDA-graphed decode.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "generate/engine.hpp"
#include "kernels/graph.hpp"

namespace r1 {

// A sequence being generated: where its completion goes, its sampling key and its length limit.
struct Sequence {
  Completion* out;
  std::uint64_t prompt_key;  // global prompt index
  std::int64_t limit;        // new tokens allowed
};

// A copy of `t` in host memory.
Tensor on_host(const Tensor& t);

// A step's draws where the logits are: token ids, their log-probs and entropies under the sampling policy,
// and minus their log-probs under the untempered policy (the cross-entropy of the drawn token), all in one
// buffer so that a step reads them back in one copy.
struct Draws {
  Tensor all;                // f32 [4, B]: lp, ent, nlp, tok (i32 bits)
  Tensor lp, ent, nlp, tok;  // f32 [B] x 3, i32 [B]: views of `all`
  Draws() = default;
  Draws(const kernels::Context& ctx, std::int64_t B);
  void draw(const kernels::Context& ctx, const Tensor& logits, const Tensor& u, const kernels::SampleOptions& opts) const;

 private:
  Tensor row(std::int64_t r, std::int64_t B) const { return all.slice(r, r + 1).view({B}); }
  Tensor lse_;
};

// The routing of the tokens each pass feeds (SamplingParams::record_experts): the pass's MoE layers write their
// selections into one i32 [L_moe, rows, k] buffer in the model's memory, copied to the host once after the
// pass and appended to the sequences' completions.
class RoutingRecorder {
 public:
  RoutingRecorder(const Model& model, bool on);
  bool on() const { return layers_ > 0; }
  // The buffer of a pass over `rows` token rows (undefined when nothing is recorded).
  Tensor buffer(const kernels::Context& ctx, std::int64_t rows) const;
  // Appends rows [i stride, i stride + fed[i]) of `buf` to live sequence i's completion (null: an idle slot, skipped).
  void append(const Tensor& buf, const std::vector<Sequence*>& live, std::int64_t stride, const std::vector<std::int64_t>& fed) const;
  // Appends rows [first, first + n) of a buffer read back to the host (`host_buf`) to `out`, as Completion::experts.
  void append_rows(const Tensor& host_buf, std::int64_t first, std::int64_t n, std::vector<std::int16_t>& out) const;

 private:
  std::int64_t layers_, k_;
  std::vector<bool> here_;  // the layers this rank runs
};

// Under expert parallelism every model pass is collective over the EP group, whose ranks hold different
// prompts: each rank runs one pass per tick (a prefill or a decode, or an idle one-token prefill once it has
// nothing left), and the group stops when no rank has work.
class Lockstep {
 public:
  Lockstep(const Model& model, const kernels::Context& ctx);
  // Whether this rank (`mine`) or, in a group, any of its ranks still has work.
  bool anyone(bool mine) const;
  // The pass of a rank without work in a tick (a one-token prefill that keeps the group's collectives
  // matched); nothing without a group. Returns whether it ran.
  bool idle(const Model& model) const;

 private:
  parallel::Communicator* group_;
  Tensor flag_;
};

// A decode step of a small batch on one GPU (Model::decodes_on_device) as a CUDA graph: the step's inputs
// go into fixed device buffers, one launch replays the trunk, head and draw, and the graph lasts while the
// cache keeps its slots and tensors (reset() when the cache is replaced or its slots are dropped: the next
// step captures a new one). A slot refilled in place (its rows copied into the same tensors) keeps the graph.
class GraphedDecode {
 public:
  GraphedDecode(const Model& model, const kernels::SampleOptions& opts, const RoutingRecorder& recorder)
      : model_(model), opts_(opts), recorder_(recorder) {}
  // Decodes `next` (one token per slot) with the draws' uniforms `u` (f64 [B] on the host) into `draws`, and
  // advances kv.lengths.
  void step(KvCache& kv, const std::vector<std::int32_t>& next, const Tensor& u);
  void reset();
  std::int64_t captures = 0;  // graphs captured so far
  Draws draws;     // the last step's
  Tensor experts;  // its routing (RoutingRecorder::buffer)

 private:
  const Model& model_;
  const kernels::SampleOptions& opts_;
  const RoutingRecorder& recorder_;
  Tensor ints_, u_;  // i32 [3, B]: token ids, positions, lengths after; f64 [B] uniforms
  std::optional<kernels::Graph> graph_;
};

// The uniforms of the live sequences' next draws (f64 [live], host; 0.5 for a null, idle slot).
Tensor uniforms(const std::vector<Sequence*>& live, std::uint64_t seed);

// Appends each live sequence's draw ([live], any memory) to its completion (null: an idle slot, skipped);
// returns the indices of the sequences that go on (the others drew a stop id or reached their limit).
std::vector<std::int32_t> record(const std::vector<Sequence*>& live, const Draws& d, const std::vector<std::int32_t>& stop_ids);

}  // namespace r1
