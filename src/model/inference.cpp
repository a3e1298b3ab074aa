// Generation on the model (Model's inference members): the KV cache, prefill of prompt batches, decode one
// token per slot (from host tokens, or from device inputs for CUDA-graph capture) and keep_slots.
#include <algorithm>

#include "kernels/embedding.hpp"
#include "kernels/gather_rows.hpp"
#include "kernels/profile.hpp"
#include "model/head.hpp"
#include "model/model.hpp"

namespace r1 {

using kernels::Context;

std::vector<Tensor> KvCache::tensors() const {
  std::vector<Tensor> t;
  for (const auto& l : layers) t.insert(t.end(), {l.kv, l.pe});
  for (const auto& l : gqa_layers) t.insert(t.end(), {l.k, l.v});
  return t;
}

void KvCache::set_tensors(const std::vector<Tensor>& t) {
  R1_CHECK(t.size() == 2 * (layers.size() + gqa_layers.size()), "KvCache::set_tensors: ", t.size(),
           " tensors for a cache of ", layers.size() + gqa_layers.size(), " layers");
  std::size_t i = 0;
  for (auto& l : layers) {
    l = MlaAttention::Cache{t[i], t[i + 1], block_table};
    i += 2;
  }
  for (auto& l : gqa_layers) {
    l = GqaAttention::Cache{t[i], t[i + 1], block_table};
    i += 2;
  }
}

std::int64_t KvCache::pool_blocks() const {
  const std::vector<Tensor> t = tensors();
  return paged() && !t.empty() ? t.front().dim(0) : 0;
}

void KvCache::upload_table() const {
  R1_CHECK(paged() && static_cast<std::int64_t>(table.size()) == slots() * blocks_per_slot(),
           "KvCache::upload_table: ", table.size(), " entries for ", slots(), " slots of ", blocks_per_slot(), " blocks");
  Tensor h = Tensor::host({slots(), blocks_per_slot()}, DType::i32);
  std::copy(table.begin(), table.end(), h.data<std::int32_t>());
  copy(block_table, h);
}

Tensor Model::embed_tokens(const std::vector<std::int32_t>& ids) const {
  const Context& ctx = params_.context();
  const auto n = static_cast<std::int64_t>(ids.size());
  const Tensor x = ctx.empty({n, c_.dim}, params_.compute_dtype());
  const std::vector<std::int32_t> rows = tp_.group.active() ? shard_ids(ids, vocab_shard(c_.vocab_size, tp_.group)) : ids;
  kernels::embedding_forward(ctx, embed_->compute, device_ints(ctx, rows, {n}), x);
  tp_.tp_reduce(ctx, x);  // vocabulary-parallel: each rank holds its shard's rows (zero for the others)
  return x;
}

Tensor Model::infer(std::int64_t T, const std::function<Tensor()>& embed, const Tensor& rows,
                    const std::function<void(std::size_t, const Tensor&, const Tensor&)>& layer) const {
  const Context& ctx = params_.context();
  std::size_t l = 0;  // this rank's layers, chunk after chunk
  const Tensor x = run_chunks(T, [&](int local, const Tensor& input) {
    Tensor h = chunks_[static_cast<std::size_t>(local)].embedding ? embed() : input;
    for (std::int64_t i = 0; i < chunks_[static_cast<std::size_t>(local)].layers; ++i, ++l) {
      const Tensor y = ctx.empty({T, c_.dim}, params_.compute_dtype());
      layer(l, h, y);
      h = y;
    }
    return h;
  });
  const std::int64_t B = rows.defined() ? rows.numel() : T;
  Tensor logits = chunks_.back().head ? head_->logits(ctx, x, rows) : Tensor{};
  if (pp_ != nullptr) {  // every stage samples from the head's logits
    if (!logits.defined()) logits = ctx.empty({B, c_.vocab_size}, DType::f32);
    pp_->broadcast(logits, chunk_rank(n_chunks_ - 1));
  }
  return logits;
}

KvCache Model::make_kv_cache(std::int64_t slots, std::int64_t max_len) const {
  R1_REQUIRE(max_len <= c_.max_seq_len, "a KV cache of ", max_len, " tokens exceeds [model] max_seq_len = ",
             c_.max_seq_len);
  KvCache cache;
  cache.max_len = max_len;
  for (const auto& blk : blocks_) {
    if (blk->gqa() != nullptr) cache.gqa_layers.push_back(blk->gqa()->make_cache(params_.context(), slots, max_len));
    else cache.layers.push_back(blk->mla()->make_cache(params_.context(), slots, max_len));
  }
  cache.lengths.assign(static_cast<std::size_t>(slots), 0);
  return cache;
}

KvCache Model::make_paged_kv_cache(std::int64_t slots, std::int64_t max_len, std::int64_t block_size,
                                   std::int64_t pool_blocks) const {
  R1_REQUIRE(slots >= 1 && block_size >= 1 && pool_blocks >= 1 && max_len >= 1 && max_len <= c_.max_seq_len,
             "a paged KV cache of ", slots, " slots x ", max_len, " tokens over ", pool_blocks, " blocks of ", block_size,
             " tokens: need at least one of each and at most [model] max_seq_len = ", c_.max_seq_len, " tokens a slot");
  KvCache cache = make_kv_cache(pool_blocks, block_size);  // pools: `pool_blocks` slots of one block each
  cache.max_len = max_len;
  cache.block_size = block_size;
  cache.lengths.assign(static_cast<std::size_t>(slots), 0);
  cache.table.assign(static_cast<std::size_t>(slots * cache.blocks_per_slot()), 0);
  cache.block_table = params_.context().zeros({slots, cache.blocks_per_slot()}, DType::i32);
  cache.set_tensors(cache.tensors());
  return cache;
}

Tensor Model::prefill(KvCache& cache, const std::vector<std::vector<std::int32_t>>& prompts, const Tensor& experts) const {
  const Context& ctx = params_.context();
  const kernels::ProfileRegion region(ctx, "prefill");
  const std::int64_t B = cache.slots();
  R1_REQUIRE(static_cast<std::int64_t>(prompts.size()) == B, "prefill of ", prompts.size(), " prompts into a cache of ",
             B, " slots");
  std::int64_t S = 0;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    const auto n = static_cast<std::int64_t>(prompts[i].size());
    R1_REQUIRE(n >= 1 && n <= cache.max_len, "prompt ", i, " has ", n, " tokens; a prompt needs 1 to ", cache.max_len,
               " (the KV cache length)");
    for (std::int32_t id : prompts[i])
      R1_REQUIRE(id >= 0 && id < c_.vocab_size, "prompt ", i, ": token id ", id, " is outside the vocabulary of ",
                 c_.vocab_size);
    S = std::max(S, n);
  }
  // Right padding with token 0: causal attention keeps it out of the real tokens, and MoE routing is per
  // token (no capacity), so padding changes nothing the prompts see.
  std::vector<std::int32_t> ids(static_cast<std::size_t>(B * S), 0), pos(ids.size()), last(static_cast<std::size_t>(B));
  for (std::int64_t b = 0; b < B; ++b) {
    const auto& p = prompts[static_cast<std::size_t>(b)];
    std::copy(p.begin(), p.end(), ids.begin() + b * S);
    for (std::int64_t s = 0; s < S; ++s) pos[static_cast<std::size_t>(b * S + s)] = static_cast<std::int32_t>(s);
    last[static_cast<std::size_t>(b)] = static_cast<std::int32_t>(b * S + static_cast<std::int64_t>(p.size()) - 1);
    cache.lengths[static_cast<std::size_t>(b)] = static_cast<std::int32_t>(p.size());
  }
  BatchShape shape;
  shape.batch = B;
  shape.seq = S;
  shape.positions = device_ints(ctx, pos, {B * S});
  return infer(B * S, [&] { return embed_tokens(ids); }, device_ints(ctx, last, {B}),
               [&](std::size_t l, const Tensor& x, const Tensor& y) {
    blocks_[l]->infer(ctx, layer_shape(shape, l, experts, false), x, y, [&](const Tensor& n1, const Tensor& out) {
      if (const GqaAttention* gqa = blocks_[l]->gqa()) gqa->prefill(ctx, shape, n1, out, cache.gqa_layers[l]);
      else blocks_[l]->mla()->prefill(ctx, shape, n1, out, cache.layers[l]);
    });
  });
}

std::vector<std::int32_t> Model::decode_lengths(const KvCache& cache, const std::vector<std::int32_t>& tokens) const {
  const std::int64_t B = cache.slots();
  R1_REQUIRE(static_cast<std::int64_t>(tokens.size()) == B, "decode of ", tokens.size(), " tokens for a cache of ", B,
             " slots");
  std::vector<std::int32_t> lengths(cache.lengths);
  for (std::int64_t b = 0; b < B; ++b) {
    const auto i = static_cast<std::size_t>(b);
    R1_REQUIRE(tokens[i] >= 0 && tokens[i] < c_.vocab_size, "decode: token id ", tokens[i], " of slot ", b,
               " is outside the vocabulary of ", c_.vocab_size);
    R1_REQUIRE(cache.lengths[i] >= 0 && cache.lengths[i] < cache.max_len, "decode: slot ", b, " holds ",
               cache.lengths[i], " tokens; it needs room in the cache of ", cache.max_len);
    ++lengths[i];
  }
  return lengths;
}

Tensor Model::decode(KvCache& cache, const std::vector<std::int32_t>& tokens, const Tensor& experts,
                     const std::vector<std::int32_t>* logit_rows) const {
  const Context& ctx = params_.context();
  const kernels::ProfileRegion region(ctx, "decode");
  std::vector<std::int32_t> lengths = decode_lengths(cache, tokens);
  const Shape shape{cache.slots()};
  Tensor rows;
  if (logit_rows != nullptr) {
    R1_REQUIRE(!logit_rows->empty(), "decode: the logits of no slot asked for");
    for (std::int32_t r : *logit_rows)
      R1_REQUIRE(r >= 0 && r < cache.slots(), "decode: logits of slot ", r, " asked for; the cache has ", cache.slots());
    rows = device_ints(ctx, *logit_rows, {static_cast<std::int64_t>(logit_rows->size())});
  }
  const Tensor logits = decode_trunk(cache, [&] { return embed_tokens(tokens); }, device_ints(ctx, cache.lengths, shape),
                                     device_ints(ctx, lengths, shape), experts, rows);
  cache.lengths = std::move(lengths);
  return logits;
}

bool Model::decodes_on_device(std::int64_t slots) const {
  const Context& ctx = params_.context();
  if (!ctx.is_cuda() || tp_.group.active() || lockstep_group() != nullptr || chunks_.size() != 1 || !chunks_[0].embedding ||
      !chunks_[0].head)
    return false;
  return std::all_of(blocks_.begin(), blocks_.end(),
                     [&](const auto& blk) { return blk->moe() == nullptr || blk->moe()->decode_on_device(ctx, slots); });
}

Tensor Model::decode_on_device(const KvCache& cache, const Tensor& ids, const Tensor& positions,
                               const Tensor& lengths, const Tensor& experts) const {
  const Context& ctx = params_.context();
  const std::int64_t B = cache.slots();
  R1_CHECK(decodes_on_device(B), "decode_on_device: ", B, " slots do not decode on the device (decodes_on_device)");
  R1_CHECK(ids.shape() == Shape{B} && positions.shape() == Shape{B} && lengths.shape() == Shape{B},
           "decode_on_device: ids, positions and lengths must be i32 [", B, "]");
  return decode_trunk(cache, [&] {
    const Tensor x = ctx.empty({B, c_.dim}, params_.compute_dtype());
    kernels::embedding_forward(ctx, embed_->compute, ids, x);
    return x;
  }, positions, lengths, experts);
}

Tensor Model::decode_trunk(const KvCache& cache, const std::function<Tensor()>& embed, const Tensor& positions,
                           const Tensor& lengths, const Tensor& experts, const Tensor& rows) const {
  const Context& ctx = params_.context();
  BatchShape shape;
  shape.batch = cache.slots();
  shape.seq = 1;
  shape.positions = positions;
  return infer(cache.slots(), embed, rows, [&](std::size_t l, const Tensor& x, const Tensor& y) {
    blocks_[l]->infer(ctx, layer_shape(shape, l, experts, false), x, y, [&](const Tensor& n1, const Tensor& out) {
      if (const GqaAttention* gqa = blocks_[l]->gqa()) gqa->decode(ctx, n1, positions, lengths, cache.gqa_layers[l], out);
      else blocks_[l]->mla()->decode(ctx, n1, positions, lengths, cache.layers[l], out);
    });
  });
}

void Model::keep_slots(KvCache& cache, const std::vector<std::int32_t>& slots) const {
  const Context& ctx = params_.context();
  const auto n = static_cast<std::int64_t>(slots.size());
  std::vector<bool> seen(cache.lengths.size(), false);
  for (std::int32_t s : slots) {
    R1_REQUIRE(s >= 0 && s < cache.slots() && !seen[static_cast<std::size_t>(s)], "keep_slots: slot ", s,
               " is out of range for ", cache.slots(), " slots or listed twice");
    seen[static_cast<std::size_t>(s)] = true;
  }
  if (n == 0) {
    cache.layers.clear();
    cache.gqa_layers.clear();
    cache.lengths.clear();
    cache.table.clear();
    cache.block_table = Tensor{};
    return;
  }
  std::vector<std::int32_t> lengths;
  for (std::int32_t s : slots) lengths.push_back(cache.lengths[static_cast<std::size_t>(s)]);
  cache.lengths = lengths;
  if (!cache.paged()) return keep_rows(ctx, cache, slots);
  const auto per = static_cast<std::size_t>(cache.blocks_per_slot());  // the kept slots' table rows; blocks stay
  std::vector<std::int32_t> table;
  for (std::int32_t s : slots) {
    const auto row = cache.table.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(s) * per);
    table.insert(table.end(), row, row + static_cast<std::ptrdiff_t>(per));
  }
  cache.table = std::move(table);
  cache.block_table = ctx.empty({n, cache.blocks_per_slot()}, DType::i32);
  cache.upload_table();
  cache.set_tensors(cache.tensors());
}

void Model::keep_rows(const Context& ctx, KvCache& cache, const std::vector<std::int32_t>& slots) {
  const auto n = static_cast<std::int64_t>(slots.size());
  const Tensor ids = device_ints(ctx, slots, {n});
  std::vector<Tensor> kept;
  for (const Tensor& t : cache.tensors()) {  // the kept slots' [L, width] rows
    kept.push_back(ctx.empty({n, t.dim(1), t.dim(2)}, t.dtype()));
    kernels::gather_rows(ctx, t, ids, kept.back());
  }
  cache.set_tensors(kept);
}

}  // namespace r1
