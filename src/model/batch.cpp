// Model::upload: a host micro-batch checked against the model and copied into its memory, with the
// positions, MTP inputs and vocabulary-shard views every layer reads.
#include <algorithm>

#include "model/model.hpp"

namespace r1 {

Tensor device_ints(const kernels::Context& ctx, const std::vector<std::int32_t>& v, const Shape& shape) {
  Tensor h = Tensor::host(shape, DType::i32);
  std::copy(v.begin(), v.end(), h.data<std::int32_t>());
  return ctx.to_here(h);
}

namespace {
// Positions restart at every sample of a packed row.
std::vector<std::int32_t> positions(const TokenBatch& tb) {
  std::vector<std::int32_t> pos(static_cast<std::size_t>(tb.batch * tb.seq));
  for (std::int64_t b = 0; b < tb.batch; ++b)
    for (std::int64_t s = 0, p = 0; s < tb.seq; ++s, ++p) {
      const std::int64_t t = b * tb.seq + s;
      if (s > 0 && !tb.segment_ids.empty() && tb.segment_ids[t] != tb.segment_ids[t - 1]) p = 0;
      pos[t] = static_cast<std::int32_t>(p);
    }
  return pos;
}
}  // namespace

DeviceBatch Model::upload(const TokenBatch& tb) const {
  const kernels::Context& ctx = params_.context();
  const std::int64_t T = tb.batch * tb.seq;
  R1_CHECK(static_cast<std::int64_t>(tb.ids.size()) == T && static_cast<std::int64_t>(tb.targets.size()) == T,
           "token batch of ", tb.ids.size(), " ids for ", tb.batch, " x ", tb.seq);
  R1_REQUIRE(tb.seq <= c_.max_seq_len, "sequence of ", tb.seq, " tokens exceeds [model] max_seq_len = ", c_.max_seq_len);
  for (std::int64_t t = 0; t < T; ++t) {
    R1_REQUIRE(tb.ids[t] >= 0 && tb.ids[t] < c_.vocab_size, "token id ", tb.ids[t], " at position ", t,
               " is outside the vocabulary of ", c_.vocab_size);
    R1_REQUIRE(tb.targets[t] >= -1 && tb.targets[t] < c_.vocab_size, "target ", tb.targets[t], " at position ", t,
               " is outside the vocabulary of ", c_.vocab_size);
  }
  DeviceBatch d;
  d.shape.batch = tb.batch;
  d.shape.seq = tb.seq;
  d.shape.positions = device_ints(ctx, positions(tb), {T});
  if (!tb.segment_ids.empty()) d.shape.segment_ids = device_ints(ctx, tb.segment_ids, {tb.batch, tb.seq});
  d.ids = device_ints(ctx, tb.ids, {T});
  d.targets = device_ints(ctx, tb.targets, {T});
  if (!tb.experts.empty()) {
    const Shape routing{trunk_moe_layers(), T, c_.n_activated_experts};
    R1_CHECK(static_cast<std::int64_t>(tb.experts.size()) == routing.numel(), "routing of ", tb.experts.size(),
             " expert ids for ", routing.str());
    d.experts = device_ints(ctx, tb.experts, routing);
    d.replay_experts = tb.replay_experts;
  }
  if (c_.mtp_depth > 0) {
    // MTP at t reads the embedding of token t+1 and predicts target t+1, within the same sample.
    std::vector<std::int32_t> mid(static_cast<std::size_t>(T), 0), mtg(static_cast<std::size_t>(T), -1);
    for (std::int64_t b = 0; b < tb.batch; ++b)
      for (std::int64_t s = 0; s + 1 < tb.seq; ++s) {
        const std::int64_t t = b * tb.seq + s;
        if (!tb.segment_ids.empty() && tb.segment_ids[t + 1] != tb.segment_ids[t]) continue;
        mid[t] = tb.ids[t + 1];
        mtg[t] = tb.targets[t + 1];
      }
    d.mtp_ids = device_ints(ctx, mid, {T});
    d.mtp_targets = device_ints(ctx, mtg, {T});
    if (tp_.group.active()) {
      const VocabShard shard = vocab_shard(c_.vocab_size, tp_.group);
      d.shard_mtp_ids = device_ints(ctx, shard_ids(mid, shard), {T});
      d.shard_mtp_targets = device_ints(ctx, shard_targets(mtg, shard), {T});
    }
  }
  if (tp_.group.active()) {
    const VocabShard shard = vocab_shard(c_.vocab_size, tp_.group);
    d.shard_ids = device_ints(ctx, shard_ids(tb.ids, shard), {T});
    d.shard_targets = device_ints(ctx, shard_targets(tb.targets, shard), {T});
  } else {
    d.shard_ids = d.ids;
    d.shard_targets = d.targets;
    d.shard_mtp_ids = d.mtp_ids;
    d.shard_mtp_targets = d.mtp_targets;
  }
  return d;
}

}  // namespace r1
