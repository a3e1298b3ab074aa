#include "model/tensor_parallel.hpp"

#include <algorithm>
#include <cmath>

#include "kernels/cross_entropy.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/profile.hpp"

namespace r1 {

void TpGroup::all_reduce(const Tensor& t) const {
  if (!active()) return;
  comm->all_reduce(t);
  comm->wait();
}

void TpGroup::all_gather(const Tensor& rows, const Tensor& whole) const {
  R1_CHECK(active(), "all_gather of sequence rows without a tensor-parallel group");
  comm->all_gather(rows, whole);
  comm->wait();
}

void TpGroup::reduce_scatter(const Tensor& partial, const Tensor& rows) const {
  R1_CHECK(active(), "reduce_scatter of sequence rows without a tensor-parallel group");
  comm->reduce_scatter(partial, rows);
  comm->wait();
}

std::pair<std::int64_t, std::int64_t> TpGroup::token_rows(std::int64_t tokens) const {
  return {tokens * rank() / size(), tokens * (rank() + 1) / size()};
}

void TpRegions::tp_reduce(const kernels::Context& ctx, const Tensor& t) const {
  if (!group.active()) return;
  const kernels::ProfileRegion region(ctx, "tp_comm");
  group.all_reduce(t);
}

Tensor TpRegions::partial_buffer(const kernels::Context& ctx, const Tensor& out, std::int64_t tokens) const {
  return sequence_parallel ? ctx.empty({tokens, out.dim(1)}, out.dtype()) : out;
}

void TpRegions::tp_complete(const kernels::Context& ctx, const Tensor& partial, const Tensor& out) const {
  if (!sequence_parallel) {
    R1_CHECK(partial.raw() == out.raw(), "tp_complete without sequence parallelism sums in place");
    tp_reduce(ctx, out);
    return;
  }
  const kernels::ProfileRegion region(ctx, "tp_comm");
  group.reduce_scatter(partial, out);
}

Tensor TpRegions::sp_gather(const kernels::Context& ctx, const Tensor& rows) const {
  if (!sequence_parallel) return rows;
  const kernels::ProfileRegion region(ctx, "tp_comm");
  const Tensor whole = ctx.empty({rows.dim(0) * group.size(), rows.dim(1)}, rows.dtype());
  group.all_gather(rows, whole);
  return whole;
}

VocabShard vocab_shard(std::int64_t vocab, const TpGroup& tp) {
  R1_REQUIRE(vocab % tp.size() == 0, "a vocabulary of ", vocab, " tokens cannot be split evenly over ", tp.size(),
             " tensor-parallel ranks ([model] vocab_size must be a multiple of [parallel] tensor)");
  const std::int64_t n = vocab / tp.size();
  return {tp.rank() * n, n};
}

std::vector<std::int32_t> shard_ids(const std::vector<std::int32_t>& ids, VocabShard shard) {
  std::vector<std::int32_t> out(ids.size());
  std::transform(ids.begin(), ids.end(), out.begin(), [&](std::int32_t id) {
    return id >= shard.begin && id < shard.begin + shard.size ? static_cast<std::int32_t>(id - shard.begin) : -1;
  });
  return out;
}

std::vector<std::int32_t> shard_targets(const std::vector<std::int32_t>& targets, VocabShard shard) {
  std::vector<std::int32_t> out(targets.size());
  std::transform(targets.begin(), targets.end(), out.begin(), [&](std::int32_t t) {
    if (t < 0) return std::int32_t{-1};
    return t >= shard.begin && t < shard.begin + shard.size ? static_cast<std::int32_t>(t - shard.begin)
                                                            : kernels::kTargetElsewhere;
  });
  return out;
}

void vocab_parallel_cross_entropy(const kernels::Context& ctx, const TpGroup& tp, const Tensor& logits,
                                  const Tensor& targets, const Tensor& losses, const Tensor& lse) {
  kernels::cross_entropy_forward(ctx, logits, targets, losses, lse);
  if (!tp.active()) return;
  // Per shard: lse_r and lse_r - loss_r (the target's logit on its owner, exactly 0 on the others, whose
  // loss is lse_r itself). Whole vocabulary: lse = log sum_r exp(lse_r), loss = lse - target logit.
  const std::int64_t t = logits.dim(0), n = tp.size();
  const Tensor mine = ctx.empty({2, t}, DType::f32);
  kernels::cast(ctx, lse, mine.slice(0, 1).view({t}));
  kernels::cast(ctx, lse, mine.slice(1, 2).view({t}));
  kernels::axpy(ctx, -1.0f, losses, mine.slice(1, 2).view({t}));
  const Tensor all = ctx.empty({n, 2, t}, DType::f32);
  tp.comm->all_gather(mine, all);
  tp.comm->wait();
  Tensor h = Tensor::host(all.shape(), DType::f32), ht = Tensor::host({t}, DType::i32);
  copy(h, all);
  copy(ht, targets);
  Tensor out_lse = Tensor::host({t}, DType::f32), out_loss = Tensor::host({t}, DType::f32);
  const float* p = h.data<float>();
  for (std::int64_t i = 0; i < t; ++i) {
    double m = -INFINITY, z = 0;
    for (std::int64_t r = 0; r < n; ++r) m = std::max(m, static_cast<double>(p[(r * 2) * t + i]));
    double s = 0;
    for (std::int64_t r = 0; r < n; ++r) {
      s += std::exp(static_cast<double>(p[(r * 2) * t + i]) - m);
      z += static_cast<double>(p[(r * 2 + 1) * t + i]);
    }
    const double l = m + std::log(s);
    out_lse.data<float>()[i] = static_cast<float>(l);
    out_loss.data<float>()[i] = ht.data<std::int32_t>()[i] == -1 ? 0.0f : static_cast<float>(l - z);
  }
  copy(lse, out_lse);
  copy(losses, out_loss);
}

}  // namespace r1
