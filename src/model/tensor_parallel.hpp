// Tensor parallelism (Megatron style, docs/parallel.md): the TP group a layer splits its heads, FFN
// columns and vocabulary over, its reductions, and the vocabulary-parallel embedding and cross-entropy.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "core/tensor.hpp"
#include "kernels/context.hpp"
#include "parallel/comm.hpp"

namespace r1 {

// A layer's TP group; no communicator (or one rank) is no tensor parallelism. Under TP a layer's output
// and input gradient are partial sums over the group, which the caller completes (TpRegions::tp_complete).
struct TpGroup {
  parallel::Communicator* comm = nullptr;
  int size() const { return comm != nullptr ? comm->size() : 1; }
  int rank() const { return comm != nullptr ? comm->rank() : 0; }
  bool active() const { return size() > 1; }
  void all_reduce(const Tensor& t) const;  // in place, sum; a no-op without TP
  // Sequence parallelism: [R, ...] row blocks of every rank -> the [tp R, ...] whole in rank order, and a
  // partial sum [tp R, ...] -> this rank's rows [R, ...] of the sum. Both need an active group.
  void all_gather(const Tensor& rows, const Tensor& whole) const;
  void reduce_scatter(const Tensor& partial, const Tensor& rows) const;
  // The token rows [first, last) of `tokens` that this rank's MoE experts run (the routed experts
  // split tokens, not weights, over TP: expert-tensor-parallel size 1).
  std::pair<std::int64_t, std::int64_t> token_rows(std::int64_t tokens) const;
};

// How a TP region (attention, FFN, output head) meets the residual stream between the regions. Without
// sequence parallelism every TP rank holds all T token rows of the stream, and a region's partial sums are
// all-reduced in place. With it (Megatron's SP: block inputs and outputs, norms, the MTP projections,
// pipeline activations) each rank holds its T / tp rows; a region all-gathers its normed input and
// reduce-scatters its partial output, so the norms' and the MTP projections' gradients become partial
// sums over TP. The collectives run in a "tp_comm" profile region.
struct TpRegions {
  TpGroup group;
  bool sequence_parallel = false;  // only with an active group
  // This rank's rows of the residual stream for T tokens: T / tp under SP, else T.
  std::int64_t residual_rows(std::int64_t tokens) const { return sequence_parallel ? tokens / group.size() : tokens; }
  // group.all_reduce of t in place (nothing without TP).
  void tp_reduce(const kernels::Context& ctx, const Tensor& t) const;
  // A region's output: its partial sums over all T token rows go into partial_buffer(out, T) (out itself
  // without SP), then tp_complete(partial, out) sums them over TP: an all-reduce in place, or under SP a
  // reduce-scatter into this rank's rows `out`.
  Tensor partial_buffer(const kernels::Context& ctx, const Tensor& out, std::int64_t tokens) const;
  void tp_complete(const kernels::Context& ctx, const Tensor& partial, const Tensor& out) const;
  // A region's input: the whole [T, D] from this rank's rows (an all-gather under SP, else rows itself).
  Tensor sp_gather(const kernels::Context& ctx, const Tensor& rows) const;
};

// This rank's rows [begin, begin + size) of the vocabulary (embedding rows, head rows, logit columns).
struct VocabShard {
  std::int64_t begin = 0, size = 0;
};
VocabShard vocab_shard(std::int64_t vocab, const TpGroup& tp);
// Token ids as rows of this shard: id - begin, or -1 for a row another rank holds (embedding kernels).
std::vector<std::int32_t> shard_ids(const std::vector<std::int32_t>& ids, VocabShard shard);
// Targets as columns of this shard's logits: -1 stays ignored, a target of another shard becomes
// kernels::kTargetElsewhere (counted: its softmax still has a gradient here).
std::vector<std::int32_t> shard_targets(const std::vector<std::int32_t>& targets, VocabShard shard);

// Cross-entropy of logits split by vocabulary: each rank holds logits [T, V / tp] of its shard and
// shard_targets. On return `losses` and `lse` (f32 [T]) are over the whole vocabulary and the same on
// every rank, ready for kernels::cross_entropy_backward on the shard. The shards' log-sum-exps and
// target logits are gathered and combined on the host in f64 (a [tp, 2, T] exchange and one sync).
void vocab_parallel_cross_entropy(const kernels::Context& ctx, const TpGroup& tp, const Tensor& logits,
                                  const Tensor& targets, const Tensor& losses, const Tensor& lse);

}  // namespace r1
