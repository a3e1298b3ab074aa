#include "model/model.hpp"

#include <algorithm>

#include "kernels/elementwise.hpp"
#include "kernels/embedding.hpp"
#include "kernels/profile.hpp"
#include "model/head.hpp"
#include "model/mtp.hpp"

namespace r1 {

using kernels::Context;

struct Model::Saved {
  std::vector<std::unique_ptr<TransformerBlock::Saved>> blocks;
  Tensor trunk;         // last block's output [R, D] (R = residual_rows(T))
  LmHead::Saved head;   // the final norm, the logits and the per-token losses
  std::vector<MtpModule::Saved> mtp;  // one per MTP depth
};

namespace {
TpRegions tp_regions(const ModelGroups& groups) {
  const TpGroup tp{groups.tp};
  return {.group = tp, .sequence_parallel = groups.sequence_parallel && tp.active()};
}

// The chunks this pipeline stage holds (all layers in one without pipeline parallelism).
std::vector<Model::ChunkInfo> stage_chunks(const ModelConfig& c, const ModelGroups& groups) {
  const int stages = groups.pp != nullptr ? groups.pp->size() : 1, stage = groups.pp != nullptr ? groups.pp->rank() : 0;
  const bool two_copies = groups.two_copies && stages > 1;
  const int n_chunks = stages * (stages > 1 && !two_copies ? groups.virtual_stages : 1);
  const parallel::ChunkPlacement placement = stages > 1 ? groups.placement : parallel::ChunkPlacement::round_robin;
  if (n_chunks == 1) return {{.index = 0, .first_layer = 0, .layers = c.n_layers, .embedding = true, .head = true}};
  R1_REQUIRE(c.mtp_depth == 0 && !c.tie_embeddings, "pipeline parallelism keeps the embedding and the head on "
             "different ranks: it needs [model] mtp_depth = 0 and tie_embeddings = false");
  const auto split = parallel::split_layers(c.n_layers, 0, n_chunks);
  R1_REQUIRE(!split.empty(), "[model] n_layers = ", c.n_layers, " cannot be cut into ", n_chunks,
             two_copies ? " DualPipe stages ([parallel] pipeline)" : " pipeline chunks ([parallel] pipeline x virtual_stages)",
             " of at least one layer each");
  const std::vector<int> held = two_copies ? std::vector<int>{stage, stages - 1 - stage}
                                           : parallel::rank_chunks(placement, stage, stages, n_chunks);
  std::vector<Model::ChunkInfo> chunks;
  for (int k : held)
    chunks.push_back({.index = k, .first_layer = split[static_cast<std::size_t>(k)].first,
                      .layers = split[static_cast<std::size_t>(k)].count, .embedding = k == 0, .head = k == n_chunks - 1,
                      .second_copy = two_copies && !chunks.empty()});
  return chunks;
}
}  // namespace

Model::Model(const ModelConfig& c, ParamStore& params, ModelGroups groups)
    : c_(c), params_(params), tp_(tp_regions(groups)), ep_(c.dense ? nullptr : groups.ep),
      pp_(groups.pp != nullptr && groups.pp->size() > 1 ? groups.pp : nullptr),
      n_chunks_(pp_ != nullptr ? pp_->size() * (groups.two_copies ? 1 : groups.virtual_stages) : 1),
      placement_(groups.placement) {
  rope_ = c.gqa() ? gqa_rope_tables(params.context(), c) : mla_rope_tables(params.context(), c);
  const auto vocab_rows = [&](const std::string& name, bool decay) {  // vocabulary-parallel under TP
    vocab_shard(c.vocab_size, tp_.group);                              // a clear error when V does not split
    return &params.add_split(name, {c.vocab_size, c.dim}, {.dim = 0}, tp_.group.rank(), tp_.group.size(), Init::normal,
                             decay);
  };
  chunks_ = stage_chunks(c, groups);
  const auto holds = [&](bool ChunkInfo::*part) {
    return std::any_of(chunks_.begin(), chunks_.end(), [&](const ChunkInfo& ch) { return ch.*part; });
  };
  if (holds(&ChunkInfo::embedding)) embed_ = vocab_rows("embed", /*decay=*/false);
  for (const ChunkInfo& ch : chunks_)
    for (std::int64_t l = ch.first_layer; l < ch.first_layer + ch.layers; ++l) {
      blocks_.push_back(std::make_unique<TransformerBlock>(c, params, "layers." + std::to_string(l), c.is_moe_layer(l),
                                                           rope_, tp_, groups.ep, groups.overlap_expert_comm));
      if (ch.second_copy) second_copy_.insert(second_copy_.end(), blocks_.back()->params().begin(), blocks_.back()->params().end());
    }
  if (chunks_.back().second_copy && chunks_.back().embedding) second_copy_.push_back(embed_);
  if (!holds(&ChunkInfo::head)) return;
  const std::size_t head_first = params.all().size();
  const Param& norm = residual_norm(params, "norm", c.dim, tp_);
  const Param& head = c.tie_embeddings ? *embed_ : *vocab_rows("head", /*decay=*/true);
  head_ = std::make_unique<LmHead>(norm, head, tp_, c.norm_eps, params.compute_dtype());
  R1_REQUIRE(c.mtp_depth <= 1, "[model] mtp_depth = ", c.mtp_depth, ": r1hpc implements MTP depth 0 or 1");
  for (std::int64_t k = 0; k < c.mtp_depth; ++k)
    mtp_.push_back(std::make_unique<MtpModule>(c, params, k, rope_, tp_, groups.ep, groups.overlap_expert_comm, *embed_, head));
  for (std::size_t i = head_first; i < params.all().size(); ++i) head_params_.push_back(params.all()[i].get());
  if (chunks_.back().second_copy && chunks_.back().head) second_copy_.insert(second_copy_.end(), head_params_.begin(), head_params_.end());
}

Model::~Model() = default;

const Model::ChunkInfo& Model::whole_model() const {
  R1_CHECK(chunks_.size() == 1 && chunks_[0].embedding && chunks_[0].head,
           "this model is split into pipeline chunks: run it chunk by chunk (forward_chunk, backward_chunk)");
  return chunks_[0];
}

std::vector<int> Model::moe_layer_ids() const {
  std::vector<int> ids;
  for (const ChunkInfo& ch : chunks_)
    for (std::int64_t l = ch.first_layer; l < ch.first_layer + ch.layers; ++l)
      if (c_.is_moe_layer(l)) ids.push_back(static_cast<int>(l - (c_.dense ? 0 : c_.n_dense_layers)));
  for (std::size_t k = 0; k < mtp_.size(); ++k) ids.push_back(static_cast<int>(ids.size()));
  return ids;
}

std::int64_t Model::moe_index(std::size_t block) const {
  std::int64_t n = static_cast<std::int64_t>(block);
  for (const ChunkInfo& ch : chunks_) {
    if (n < ch.layers) return c_.is_moe_layer(ch.first_layer + n) ? ch.first_layer + n - c_.n_dense_layers : -1;
    n -= ch.layers;
  }
  R1_CHECK(false, "block ", block, " is not one of this rank's ", blocks_.size());
  return -1;
}

std::vector<std::int64_t> Model::trunk_moe_layers_here() const {
  std::vector<std::int64_t> ids;
  for (std::size_t i = 0; i < blocks_.size(); ++i)
    if (const std::int64_t m = moe_index(i); m >= 0) ids.push_back(m);
  return ids;
}

BatchShape Model::layer_shape(const BatchShape& b, std::size_t block, const Tensor& experts, bool replay) const {
  const std::int64_t m = experts.defined() ? moe_index(block) : -1;
  if (m < 0) return b;
  BatchShape s = b;
  s.experts = experts.slice(m, m + 1).view({experts.dim(1), experts.dim(2)});
  s.replay_experts = replay;
  return s;
}

int Model::moe_layer_count() const {
  int n = 0;
  for (const auto& b : blocks_) n += b->moe() != nullptr;
  for (const auto& m : mtp_) n += m->block().moe() != nullptr;
  return n;
}

void Model::SavedDeleter::operator()(Saved* s) const { delete s; }

Model::SavedPtr Model::forward(const DeviceBatch& b, ForwardResult& r) const {
  whole_model();
  return forward_chunk(0, b, Tensor{}, r);
}

const Tensor& Model::chunk_output(const Saved& s) { return s.trunk; }

Model::SavedPtr Model::forward_chunk(int local, const DeviceBatch& b, const Tensor& input, ForwardResult& r) const {
  const Context& ctx = params_.context();
  const DType dt = params_.compute_dtype();
  const std::int64_t T = b.shape.tokens(), D = c_.dim;
  const kernels::ProfileRegion region(ctx, "forward");
  const ChunkInfo& ch = chunks_.at(static_cast<std::size_t>(local));
  SavedPtr s(new Saved);
  r = ForwardResult{};
  r.loss_sum = ctx.zeros({1}, DType::f32);
  r.balance_loss = ctx.zeros({1}, DType::f32);

  R1_REQUIRE(!tp_.sequence_parallel || T % tp_.group.size() == 0, "sequence parallelism splits the ", T,
             " tokens of a micro-batch over ", tp_.group.size(), " tensor-parallel ranks: [train] micro_batch x [data] "
             "seq_len must be a multiple of [parallel] tensor");
  const std::int64_t R = residual_rows(T);
  Tensor x = input;
  if (ch.embedding) {  // vocabulary-parallel under TP: each rank's rows are a partial sum
    x = ctx.empty({R, D}, dt);
    const Tensor partial = tp_.partial_buffer(ctx, x, T);
    kernels::embedding_forward(ctx, embed_->compute, b.shard_ids, partial);
    tp_.tp_complete(ctx, partial, x);
  }
  R1_CHECK(x.defined() && x.shape() == Shape({R, D}) && x.dtype() == dt, "chunk ", ch.index, " input ",
           x.defined() ? x.str() : "(none)", " for ", R, " token rows of width ", D);
  const std::int64_t first = block_index(local);
  for (std::int64_t i = first; i < first + ch.layers; ++i) {
    Tensor y = ctx.empty({R, D}, dt);
    const auto blk = static_cast<std::size_t>(i);
    s->blocks.push_back(blocks_[blk]->forward(ctx, layer_shape(b.shape, blk, b.experts, b.replay_experts), x, y, r,
                                              !full_recompute));
    x = y;
  }
  s->trunk = x;
  if (!ch.head) return s;
  {
    const kernels::ProfileRegion part(ctx, "head");
    s->head = head_->forward(ctx, x, b.shard_targets, r.loss_sum);
  }
  // Depth 1 at most (checked at construction): the module reads the trunk output.
  for (const auto& m : mtp_) s->mtp.push_back(m->forward(ctx, b, s->trunk, r, !full_recompute));
  return s;
}

const Tensor& Model::logits(const Saved& s) { return s.head.logits; }

const Tensor& Model::token_losses(const Saved& s) { return s.head.losses; }

const Tensor& Model::final_hidden(const Saved& s) { return s.head.normed; }

void Model::backward(const DeviceBatch& b, Saved& s, float token_weight, float balance_weight,
                     const GradsReady& ready) const {
  Tensor dloss = params_.context().empty({b.shape.tokens()}, DType::f32);
  kernels::fill(params_.context(), dloss, token_weight);  // ignored targets get no gradient in the CE backward
  backward(b, s, dloss, token_weight, balance_weight, ready);
}

void Model::backward(const DeviceBatch& b, Saved& s, const Tensor& dloss, float mtp_token_weight, float balance_weight,
                     const GradsReady& ready) const {
  whole_model();
  const kernels::ProfileRegion region(params_.context(), "backward");
  trunk_backward(0, b, s, head_backward(b, s, dloss, mtp_token_weight, balance_weight, ready), balance_weight, ready);
}

Tensor Model::backward_chunk(int local, const DeviceBatch& b, Saved& s, const Tensor& dout, float token_weight,
                             float balance_weight, const GradsReady& ready) const {
  const Context& ctx = params_.context();
  Tensor dloss;
  if (chunks_.at(static_cast<std::size_t>(local)).head) {
    dloss = ctx.empty({b.shape.tokens()}, DType::f32);
    kernels::fill(ctx, dloss, token_weight);
  }
  return backward_chunk(local, b, s, dout, dloss, token_weight, balance_weight, ready);
}

Tensor Model::backward_chunk(int local, const DeviceBatch& b, Saved& s, const Tensor& dout, const Tensor& token_weights,
                             float mtp_token_weight, float balance_weight, const GradsReady& ready) const {
  const kernels::ProfileRegion region(params_.context(), "backward");
  if (!chunks_.at(static_cast<std::size_t>(local)).head) return trunk_backward(local, b, s, dout, balance_weight, ready);
  return trunk_backward(local, b, s, head_backward(b, s, token_weights, mtp_token_weight, balance_weight, ready),
                        balance_weight, ready);
}

Tensor Model::score_tokens(const DeviceBatch& b) const {
  const Context& ctx = params_.context();
  const std::int64_t T = b.shape.tokens();
  Tensor losses;
  run_chunks(residual_rows(T), [&](int local, const Tensor& input) {
    ForwardResult r;
    const SavedPtr s = forward_chunk(local, b, input, r);
    if (chunks_[static_cast<std::size_t>(local)].head) losses = s->head.losses;
    return s->trunk;
  });
  if (pp_ != nullptr) {
    if (!losses.defined()) losses = ctx.empty({T}, DType::f32);
    pp_->broadcast(losses, chunk_rank(n_chunks_ - 1));
  }
  return losses;
}

Tensor Model::head_backward(const DeviceBatch& b, Saved& s, const Tensor& dloss, float mtp_token_weight,
                            float balance_weight, const GradsReady& ready) const {
  const Context& ctx = params_.context();
  const std::int64_t T = b.shape.tokens();
  R1_CHECK(dloss.numel() == T && dloss.dtype() == DType::f32, "token weights ", dloss.str(), " for ", T, " tokens");
  Tensor dtrunk;
  {
    const kernels::ProfileRegion part(ctx, "head");
    dtrunk = head_->backward(ctx, s.head, b.shard_targets, dloss);
  }
  for (std::size_t k = mtp_.size(); k-- > 0;)
    mtp_[k]->backward(ctx, b, s.mtp[k], dloss, mtp_token_weight, balance_weight, dtrunk);
  if (ready) ready(head_params_);
  return dtrunk;
}

void Model::backward_from_hidden(const DeviceBatch& b, Saved& s, const Tensor& d_hidden, float balance_weight,
                                 const GradsReady& ready) const {
  R1_REQUIRE(!tp_.sequence_parallel, "the backward from the final hidden states (reward models) runs without sequence "
             "parallelism");
  const Context& ctx = params_.context();
  const DType dt = params_.compute_dtype();
  const std::int64_t T = b.shape.tokens(), D = c_.dim;
  R1_CHECK(d_hidden.rank() == 2 && d_hidden.dim(0) == T && d_hidden.dim(1) == D &&
               (d_hidden.dtype() == DType::f32 || d_hidden.dtype() == dt),
           "d final_hidden ", d_hidden.str(), " for ", T, " tokens of width ", D);
  Tensor dnorm = d_hidden;
  if (d_hidden.dtype() != dt) {  // the norm backward reads the compute dtype
    dnorm = ctx.empty({T, D}, dt);
    kernels::cast(ctx, d_hidden, dnorm);
  }
  trunk_backward(0, b, s, head_->norm_backward(ctx, s.head, dnorm), balance_weight, ready);
}

Tensor Model::trunk_backward(int local, const DeviceBatch& b, Saved& s, const Tensor& dtrunk, float balance_weight,
                             const GradsReady& ready) const {
  const Context& ctx = params_.context();
  const std::int64_t R = residual_rows(b.shape.tokens()), D = c_.dim;
  const std::int64_t first = block_index(local);
  R1_CHECK(dtrunk.defined() && dtrunk.shape() == Shape({R, D}), "chunk ", chunks_[static_cast<std::size_t>(local)].index,
           ": output gradient ", dtrunk.defined() ? dtrunk.str() : "(none)", " for ", R, " token rows of width ", D);
  Tensor dy = dtrunk;
  for (std::size_t i = s.blocks.size(); i-- > 0;) {
    Tensor dx = ctx.empty({R, D}, params_.compute_dtype());
    const TransformerBlock& blk = *blocks_[static_cast<std::size_t>(first) + i];
    blk.backward(ctx, layer_shape(b.shape, static_cast<std::size_t>(first) + i, b.experts, b.replay_experts), *s.blocks[i],
                 dy, dx, balance_weight);
    s.blocks[i].reset();  // free this block's activations as soon as they are used
    if (ready) ready(blk.params());
    dy = dx;
  }
  if (!chunks_[static_cast<std::size_t>(local)].embedding) return dy;
  kernels::embedding_backward(ctx, tp_.sp_gather(ctx, dy), b.shard_ids, embed_->grad);
  return Tensor{};
}

std::vector<std::span<Param* const>> Model::grads_complete_order() const {
  std::vector<std::span<Param* const>> out;
  for (std::size_t local = chunks_.size(); local-- > 0;) {
    if (chunks_[local].head) out.emplace_back(head_params_);
    const std::int64_t first = block_index(static_cast<int>(local));
    for (std::int64_t i = chunks_[local].layers; i-- > 0;) out.push_back(blocks_[static_cast<std::size_t>(first + i)]->params());
  }
  return out;
}

int Model::chunk_rank(int chunk) const {
  return pp_ != nullptr ? parallel::chunk_rank(placement_, chunk, pp_->size()) : 0;
}

std::int64_t Model::block_index(int local) const {
  std::int64_t first = 0;
  for (int k = 0; k < local; ++k) first += chunks_.at(static_cast<std::size_t>(k)).layers;
  return first;
}

TokenDispatcher::Traffic Model::expert_traffic() const {
  TokenDispatcher::Traffic sum;
  const auto add = [&](const TransformerBlock& blk) {
    if (blk.moe() == nullptr) return;
    sum.dispatch_bytes += blk.moe()->traffic().dispatch_bytes;
    sum.combine_bytes += blk.moe()->traffic().combine_bytes;
  };
  for (const auto& b : blocks_) add(*b);
  for (const auto& m : mtp_) add(m->block());
  return sum;
}

void Model::update_router_bias(const std::vector<std::vector<std::int64_t>>& counts, float gamma) const {
  const Context& ctx = params_.context();
  std::size_t i = 0;
  const auto update = [&](const TransformerBlock& blk) {
    if (blk.moe() == nullptr) return;
    R1_CHECK(i < counts.size(), "expert counts for ", counts.size(), " MoE layers, the model has more");
    Tensor h = Tensor::host({static_cast<std::int64_t>(counts[i].size())}, DType::i32);
    for (std::size_t e = 0; e < counts[i].size(); ++e) h.data<std::int32_t>()[e] = static_cast<std::int32_t>(counts[i][e]);
    blk.moe()->update_bias(ctx, ctx.to_here(h), gamma);
    ++i;
  };
  for (const auto& b : blocks_) update(*b);
  for (const auto& m : mtp_) update(m->block());
}

Tensor Model::run_chunks(std::int64_t rows, const std::function<Tensor(int local, const Tensor& input)>& run) const {
  const int here = chunk_rank(chunks_.front().index);
  Tensor out;
  for (std::size_t local = 0; local < chunks_.size(); ++local) {
    const ChunkInfo& ch = chunks_[local];
    Tensor input;
    if (!ch.embedding && chunk_rank(ch.index - 1) == here) {
      input = out;  // the turn of the V: the previous chunk ran here
    } else if (!ch.embedding) {
      input = params_.context().empty({rows, c_.dim}, params_.compute_dtype());
      pp_->recv(input, chunk_rank(ch.index - 1));
    }
    out = run(static_cast<int>(local), input);
    if (!ch.head && chunk_rank(ch.index + 1) != here) pp_->send(out, chunk_rank(ch.index + 1));
  }
  return out;
}

}  // namespace r1
