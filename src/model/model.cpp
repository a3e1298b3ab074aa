#include "model/model.hpp"

#include <optional>

#include "kernels/copy_columns.hpp"
#include "kernels/cross_entropy.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/embedding.hpp"
#include "kernels/gemm.hpp"
#include "kernels/reduce.hpp"
#include "kernels/rmsnorm.hpp"
#include "kernels/profile.hpp"

namespace r1 {

using kernels::Context;

struct Model::Block {
  Param* attn_norm = nullptr;
  Param* ffn_norm = nullptr;
  std::unique_ptr<MlaAttention> attn;
  std::unique_ptr<DenseMlp> mlp;  // dense FFN layers
  std::unique_ptr<MoeFfn> moe;    // MoE layers
  std::vector<Param*> params;     // every parameter the block registered
};

// What one block keeps between its forward and backward. Under full recompute only `x` is kept and
// the rest is rebuilt just before the backward.
struct Model::BlockSaved {
  Tensor x, n1, rstd1, h, n2, rstd2;
  std::optional<MlaAttention::Saved> attn;
  std::optional<DenseMlp::Saved> mlp;
  std::optional<MoeFfn::Saved> moe;
};

struct Model::Saved {
  std::vector<std::unique_ptr<BlockSaved>> blocks;
  Tensor trunk;                 // last block's output [R, D] (R = residual_rows(T))
  Tensor final_norm, final_rstd;  // final_norm: every token's [T, D] (gathered under SP), rstd [R]
  Tensor logits, lse, losses;   // main head
  // MTP (depth 1): normalised embedding and trunk halves, projection output, block, norm, head.
  Tensor mtp_emb, mtp_en, mtp_en_rstd, mtp_hn, mtp_hn_rstd, mtp_x, mtp_y, mtp_norm, mtp_rstd, mtp_logits, mtp_lse, mtp_losses;
  std::unique_ptr<BlockSaved> mtp_block;
};

namespace {
Param& norm_param(ParamStore& p, const std::string& name, std::int64_t dim) {
  return p.add(name, {dim}, Init::ones, /*decay=*/false);
}

void linear_forward(const Context& ctx, const Tensor& x, const Param& w, const Tensor& y) {
  kernels::gemm(ctx, x, w.compute, y, {.trans_b = true});
}
// dx (+)= dy W and dW += dy^T x.
void linear_backward(const Context& ctx, const Tensor& dy, const Tensor& x, const Param& w, const Tensor& dx,
                     bool accumulate_dx) {
  kernels::gemm(ctx, dy, x, w.grad, {.trans_a = true, .beta = 1.0f});
  kernels::gemm(ctx, dy, w.compute, dx, {.beta = accumulate_dx ? 1.0f : 0.0f});
}

void copy_into(const Context& ctx, const Tensor& src, const Tensor& dst) { kernels::cast(ctx, src, dst); }

Tensor ints_to(const Context& ctx, const std::vector<std::int32_t>& v, const Shape& shape) {
  Tensor h = Tensor::host(shape, DType::i32);
  std::copy(v.begin(), v.end(), h.data<std::int32_t>());
  return ctx.to_here(h);
}
}  // namespace

Model::Model(const ModelConfig& c, ParamStore& params, ModelGroups groups)
    : c_(c), params_(params), tp_{groups.tp}, ep_(c.dense ? nullptr : groups.ep),
      pp_(groups.pp != nullptr && groups.pp->size() > 1 ? groups.pp : nullptr), sp_(groups.sequence_parallel && tp_.active()) {
  const Context& ctx = params.context();
  rope_ = mla_rope_tables(ctx, c);
  const auto vocab_rows = [&](const std::string& name, bool decay) {  // vocabulary-parallel under TP
    vocab_shard(c.vocab_size, tp_);                                    // a clear error when V does not split
    return &params.add_split(name, {c.vocab_size, c.dim}, {.dim = 0}, tp_.rank(), tp_.size(), Init::normal, decay);
  };
  // The chunks this rank holds: all layers in one without pipeline parallelism.
  const int stages = groups.pp != nullptr ? groups.pp->size() : 1, stage = groups.pp != nullptr ? groups.pp->rank() : 0;
  const int n_chunks = stages * (stages > 1 ? groups.virtual_stages : 1);
  if (n_chunks == 1) {
    chunks_.push_back({.index = 0, .first_layer = 0, .layers = c.n_layers, .embedding = true, .head = true});
  } else {
    R1_REQUIRE(c.mtp_depth == 0 && !c.tie_embeddings, "pipeline parallelism keeps the embedding and the head on "
               "different ranks: it needs [model] mtp_depth = 0 and tie_embeddings = false");
    const auto split = parallel::split_layers(c.n_layers, 0, n_chunks);
    R1_REQUIRE(!split.empty(), "[model] n_layers = ", c.n_layers, " cannot be cut into ", n_chunks,
               " pipeline chunks ([parallel] pipeline x virtual_stages) of at least one layer each");
    for (int k = stage; k < n_chunks; k += stages)
      chunks_.push_back({.index = k, .first_layer = split[static_cast<std::size_t>(k)].first,
                         .layers = split[static_cast<std::size_t>(k)].count, .embedding = k == 0, .head = k == n_chunks - 1});
  }
  if (chunks_.front().embedding) embed_ = vocab_rows("embed", /*decay=*/false);
  // Under sequence parallelism the norms (and MTP's projections) see this rank's token rows only: their
  // gradients are partial sums over TP.
  const auto rows_param = [&](Param& p) -> Param& {
    if (sp_) p.tp = TpRole::partial;
    return p;
  };
  const auto norm = [&](const std::string& name) -> Param& { return rows_param(norm_param(params, name, c.dim)); };
  const auto make_block = [&](const std::string& prefix, bool moe) {
    const std::size_t before = params.all().size();
    auto b = std::make_unique<Block>();
    b->attn_norm = &norm(prefix + ".attn_norm");
    b->attn = std::make_unique<MlaAttention>(c, params, prefix + ".attn", rope_, tp_);
    b->ffn_norm = &norm(prefix + ".ffn_norm");
    if (moe) b->moe = std::make_unique<MoeFfn>(c, params, prefix + ".moe", groups.ep, tp_, groups.overlap_expert_comm);
    else b->mlp = std::make_unique<DenseMlp>(params, prefix + ".mlp", c.dim, c.dense_inter_dim, tp_);
    for (std::size_t i = before; i < params.all().size(); ++i) b->params.push_back(params.all()[i].get());
    return b;
  };
  for (const ChunkInfo& ch : chunks_)
    for (std::int64_t l = ch.first_layer; l < ch.first_layer + ch.layers; ++l)
      blocks_.push_back(make_block("layers." + std::to_string(l), c.is_moe_layer(l)));
  if (!chunks_.back().head) return;
  const std::size_t head_first = params.all().size();
  norm_ = &norm("norm");
  head_ = c.tie_embeddings ? embed_ : vocab_rows("head", /*decay=*/true);
  R1_REQUIRE(c.mtp_depth <= 1, "[model] mtp_depth = ", c.mtp_depth, ": r1hpc implements MTP depth 0 or 1");
  for (std::int64_t k = 0; k < c.mtp_depth; ++k) {
    const std::string p = "mtp." + std::to_string(k);
    norm(p + ".enorm");
    norm(p + ".hnorm");
    rows_param(params.add(p + ".proj_e", {c.dim, c.dim}, Init::normal));
    rows_param(params.add(p + ".proj_h", {c.dim, c.dim}, Init::normal));
    norm(p + ".norm");
    mtp_blocks_.push_back(make_block(p + ".block", !c.dense));
  }
  for (std::size_t i = head_first; i < params.all().size(); ++i) head_params_.push_back(params.all()[i].get());
}

Model::~Model() = default;

void Model::tp_reduce(const Tensor& t) const {
  if (!tp_.active()) return;
  const kernels::ProfileRegion region(params_.context(), "tp_comm");
  tp_.all_reduce(t);
}

Tensor Model::partial_buffer(const Tensor& out, std::int64_t tokens) const {
  return sp_ ? params_.context().empty({tokens, out.dim(1)}, out.dtype()) : out;
}

void Model::tp_complete(const Tensor& partial, const Tensor& out) const {
  if (!sp_) {
    R1_CHECK(partial.raw() == out.raw(), "tp_complete without sequence parallelism sums in place");
    tp_reduce(out);
    return;
  }
  const kernels::ProfileRegion region(params_.context(), "tp_comm");
  tp_.reduce_scatter(partial, out);
}

Tensor Model::sp_gather(const Tensor& rows) const {
  if (!sp_) return rows;
  const kernels::ProfileRegion region(params_.context(), "tp_comm");
  const Tensor whole = params_.context().empty({rows.dim(0) * tp_.size(), rows.dim(1)}, rows.dtype());
  tp_.all_gather(rows, whole);
  return whole;
}

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
  for (std::size_t k = 0; k < mtp_blocks_.size(); ++k) ids.push_back(static_cast<int>(ids.size()));
  return ids;
}

int Model::moe_layer_count() const {
  int n = 0;
  for (const auto& b : blocks_) n += b->moe != nullptr;
  for (const auto& b : mtp_blocks_) n += b->moe != nullptr;
  return n;
}

DeviceBatch Model::upload(const TokenBatch& tb) const {
  const Context& ctx = params_.context();
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
  // Positions restart at every sample of a packed row.
  std::vector<std::int32_t> pos(static_cast<std::size_t>(T));
  for (std::int64_t b = 0; b < tb.batch; ++b)
    for (std::int64_t s = 0, p = 0; s < tb.seq; ++s, ++p) {
      const std::int64_t t = b * tb.seq + s;
      if (s > 0 && !tb.segment_ids.empty() && tb.segment_ids[t] != tb.segment_ids[t - 1]) p = 0;
      pos[t] = static_cast<std::int32_t>(p);
    }
  d.shape.positions = ints_to(ctx, pos, {T});
  if (!tb.segment_ids.empty()) d.shape.segment_ids = ints_to(ctx, tb.segment_ids, {tb.batch, tb.seq});
  d.ids = ints_to(ctx, tb.ids, {T});
  d.targets = ints_to(ctx, tb.targets, {T});
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
    d.mtp_ids = ints_to(ctx, mid, {T});
    d.mtp_targets = ints_to(ctx, mtg, {T});
    if (tp_.active()) {
      const VocabShard shard = vocab_shard(c_.vocab_size, tp_);
      d.shard_mtp_ids = ints_to(ctx, shard_ids(mid, shard), {T});
      d.shard_mtp_targets = ints_to(ctx, shard_targets(mtg, shard), {T});
    }
  }
  if (tp_.active()) {
    const VocabShard shard = vocab_shard(c_.vocab_size, tp_);
    d.shard_ids = ints_to(ctx, shard_ids(tb.ids, shard), {T});
    d.shard_targets = ints_to(ctx, shard_targets(tb.targets, shard), {T});
  } else {
    d.shard_ids = d.ids;
    d.shard_targets = d.targets;
    d.shard_mtp_ids = d.mtp_ids;
    d.shard_mtp_targets = d.mtp_targets;
  }
  return d;
}

std::unique_ptr<Model::BlockSaved> Model::block_forward(const Block& blk, const DeviceBatch& b, const Tensor& x,
                                                        const Tensor& y, ForwardResult& r, bool keep) const {
  const Context& ctx = params_.context();
  const DType dt = params_.compute_dtype();
  const std::int64_t T = b.shape.tokens(), R = residual_rows(T);  // R: this rank's rows of the residual stream
  const float eps = static_cast<float>(c_.norm_eps);
  auto s = std::make_unique<BlockSaved>();
  s->x = x;
  s->n1 = ctx.empty({R, c_.dim}, dt);
  s->rstd1 = ctx.empty({R}, DType::f32);
  kernels::rmsnorm_forward(ctx, x, blk.attn_norm->master, eps, s->n1, s->rstd1);
  s->h = ctx.empty({R, c_.dim}, dt);
  {
    const kernels::ProfileRegion region(ctx, "attn");
    const Tensor partial = partial_buffer(s->h, T);
    s->attn = blk.attn->forward(ctx, b.shape, sp_gather(s->n1), partial);
    tp_complete(partial, s->h);
  }
  kernels::axpy(ctx, 1.0f, x, s->h);  // h = x + attn(norm(x))
  s->n2 = ctx.empty({R, c_.dim}, dt);
  s->rstd2 = ctx.empty({R}, DType::f32);
  kernels::rmsnorm_forward(ctx, s->h, blk.ffn_norm->master, eps, s->n2, s->rstd2);
  const kernels::ProfileRegion ffn_region(ctx, blk.moe ? "moe" : "mlp");
  const Tensor partial = partial_buffer(y, T), n2 = sp_gather(s->n2);
  if (blk.moe) {
    MoeStats stats;
    s->moe = blk.moe->forward(ctx, b.shape, n2, partial, stats);
    kernels::axpy(ctx, 1.0f, stats.balance_loss, r.balance_loss);
    r.expert_counts.push_back(stats.counts);
  } else {
    s->mlp = blk.mlp->forward(ctx, n2, partial);
  }
  tp_complete(partial, y);
  kernels::axpy(ctx, 1.0f, s->h, y);  // y = h + ffn(norm(h))
  if (!keep) {                        // keep only the input; backward rebuilds the rest
    auto kept = std::make_unique<BlockSaved>();
    kept->x = x;
    return kept;
  }
  return s;
}

void Model::block_backward(const Block& blk, const DeviceBatch& b, BlockSaved& s0, const Tensor& dy, const Tensor& dx,
                           float balance_weight) const {
  const Context& ctx = params_.context();
  const DType dt = params_.compute_dtype();
  const std::int64_t T = b.shape.tokens(), R = residual_rows(T);
  std::unique_ptr<BlockSaved> rebuilt;
  BlockSaved* s = &s0;
  if (!s0.n1.defined()) {  // full recompute: run the forward again (stats of this pass are discarded)
    ForwardResult scratch;
    scratch.balance_loss = ctx.zeros({1}, DType::f32);
    rebuilt = block_forward(blk, b, s0.x, ctx.empty({R, c_.dim}, dt), scratch, /*keep=*/true);
    s = rebuilt.get();
  }
  // y = h + f(n2): dh = dy + n2-path. Under SP the region's input gradient is the all-gathered dy (the
  // adjoint of the forward's reduce-scatter) and its partial dn2 is reduce-scattered (of the all-gather).
  Tensor dn2 = ctx.empty({R, c_.dim}, dt);
  {
    const kernels::ProfileRegion region(ctx, blk.moe ? "moe" : "mlp");
    const Tensor partial = partial_buffer(dn2, T), dy_all = sp_gather(dy);
    if (blk.moe) blk.moe->backward(ctx, b.shape, *s->moe, dy_all, partial, balance_weight);
    else blk.mlp->backward(ctx, *s->mlp, dy_all, partial);
    tp_complete(partial, dn2);
  }
  Tensor dh = ctx.empty({R, c_.dim}, dt);
  kernels::rmsnorm_backward(ctx, dn2, s->h, blk.ffn_norm->master, s->rstd2, dh, blk.ffn_norm->grad);
  kernels::axpy(ctx, 1.0f, dy, dh);
  // h = x + attn(n1): dx = dh + n1-path.
  Tensor dn1 = ctx.empty({R, c_.dim}, dt);
  {
    const kernels::ProfileRegion region(ctx, "attn");
    const Tensor partial = partial_buffer(dn1, T);
    blk.attn->backward(ctx, b.shape, *s->attn, sp_gather(dh), partial);
    tp_complete(partial, dn1);
  }
  kernels::rmsnorm_backward(ctx, dn1, s->x, blk.attn_norm->master, s->rstd1, dx, blk.attn_norm->grad);
  kernels::axpy(ctx, 1.0f, dh, dx);
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
  const float eps = static_cast<float>(c_.norm_eps);
  const kernels::ProfileRegion region(ctx, "forward");
  const ChunkInfo& ch = chunks_.at(static_cast<std::size_t>(local));
  SavedPtr s(new Saved);
  r = ForwardResult{};
  r.loss_sum = ctx.zeros({1}, DType::f32);
  r.balance_loss = ctx.zeros({1}, DType::f32);

  R1_REQUIRE(!sp_ || T % tp_.size() == 0, "sequence parallelism splits the ", T, " tokens of a micro-batch over ",
             tp_.size(), " tensor-parallel ranks: [train] micro_batch x [data] seq_len must be a multiple of [parallel] tensor");
  const std::int64_t R = residual_rows(T);
  Tensor x = input;
  if (ch.embedding) {  // vocabulary-parallel under TP: each rank's rows are a partial sum
    x = ctx.empty({R, D}, dt);
    const Tensor partial = partial_buffer(x, T);
    kernels::embedding_forward(ctx, embed_->compute, b.shard_ids, partial);
    tp_complete(partial, x);
  }
  R1_CHECK(x.defined() && x.shape() == Shape({R, D}) && x.dtype() == dt, "chunk ", ch.index, " input ",
           x.defined() ? x.str() : "(none)", " for ", R, " token rows of width ", D);
  const std::int64_t first = block_index(local);
  for (std::int64_t i = first; i < first + ch.layers; ++i) {
    Tensor y = ctx.empty({R, D}, dt);
    s->blocks.push_back(block_forward(*blocks_[static_cast<std::size_t>(i)], b, x, y, r, !full_recompute));
    x = y;
  }
  s->trunk = x;
  if (!ch.head) return s;
  std::optional<kernels::ProfileRegion> part(std::in_place, ctx, "head");
  s->final_norm = ctx.empty({R, D}, dt);
  s->final_rstd = ctx.empty({R}, DType::f32);
  kernels::rmsnorm_forward(ctx, x, norm_->master, eps, s->final_norm, s->final_rstd);
  s->final_norm = sp_gather(s->final_norm);  // the head (vocabulary-parallel) reads every token
  s->logits = ctx.empty({T, head_->shape[0]}, dt);
  linear_forward(ctx, s->final_norm, *head_, s->logits);
  s->losses = ctx.empty({T}, DType::f32);
  s->lse = ctx.empty({T}, DType::f32);
  vocab_parallel_cross_entropy(ctx, tp_, s->logits, b.shard_targets, s->losses, s->lse);
  kernels::reduce(ctx, kernels::ReduceOp::sum, s->losses, r.loss_sum);

  part.reset();
  if (!mtp_blocks_.empty()) {
    const kernels::ProfileRegion mtp_region(ctx, "mtp");
    const std::string p = "mtp.0";
    s->mtp_emb = ctx.empty({R, D}, dt);
    const Tensor partial = partial_buffer(s->mtp_emb, T);
    kernels::embedding_forward(ctx, embed_->compute, b.shard_mtp_ids, partial);
    tp_complete(partial, s->mtp_emb);
    s->mtp_en = ctx.empty({R, D}, dt);
    s->mtp_en_rstd = ctx.empty({R}, DType::f32);
    kernels::rmsnorm_forward(ctx, s->mtp_emb, params_.get(p + ".enorm").master, eps, s->mtp_en, s->mtp_en_rstd);
    s->mtp_hn = ctx.empty({R, D}, dt);
    s->mtp_hn_rstd = ctx.empty({R}, DType::f32);
    kernels::rmsnorm_forward(ctx, s->trunk, params_.get(p + ".hnorm").master, eps, s->mtp_hn, s->mtp_hn_rstd);
    s->mtp_x = ctx.empty({R, D}, dt);
    linear_forward(ctx, s->mtp_en, params_.get(p + ".proj_e"), s->mtp_x);
    kernels::gemm(ctx, s->mtp_hn, params_.get(p + ".proj_h").compute, s->mtp_x, {.trans_b = true, .beta = 1.0f});
    s->mtp_y = ctx.empty({R, D}, dt);
    s->mtp_block = block_forward(*mtp_blocks_[0], b, s->mtp_x, s->mtp_y, r, !full_recompute);
    s->mtp_norm = ctx.empty({R, D}, dt);
    s->mtp_rstd = ctx.empty({R}, DType::f32);
    kernels::rmsnorm_forward(ctx, s->mtp_y, params_.get(p + ".norm").master, eps, s->mtp_norm, s->mtp_rstd);
    s->mtp_norm = sp_gather(s->mtp_norm);
    s->mtp_logits = ctx.empty({T, head_->shape[0]}, dt);
    linear_forward(ctx, s->mtp_norm, *head_, s->mtp_logits);
    s->mtp_losses = ctx.empty({T}, DType::f32);
    s->mtp_lse = ctx.empty({T}, DType::f32);
    vocab_parallel_cross_entropy(ctx, tp_, s->mtp_logits, b.shard_mtp_targets, s->mtp_losses, s->mtp_lse);
    r.mtp_loss_sum = ctx.empty({1}, DType::f32);
    kernels::reduce(ctx, kernels::ReduceOp::sum, s->mtp_losses, r.mtp_loss_sum);
  }
  return s;
}

const Tensor& Model::logits(const Saved& s) { return s.logits; }

const Tensor& Model::token_losses(const Saved& s) { return s.losses; }

void Model::backward(const DeviceBatch& b, Saved& s, float token_weight, float balance_weight) const {
  Tensor dloss = params_.context().empty({b.shape.tokens()}, DType::f32);
  kernels::fill(params_.context(), dloss, token_weight);  // ignored targets get no gradient in the CE backward
  backward(b, s, dloss, token_weight, balance_weight);
}

void Model::backward(const DeviceBatch& b, Saved& s, const Tensor& dloss, float mtp_token_weight,
                     float balance_weight) const {
  whole_model();
  const kernels::ProfileRegion region(params_.context(), "backward");
  trunk_backward(0, b, s, head_backward(b, s, dloss, mtp_token_weight, balance_weight), balance_weight);
}

Tensor Model::backward_chunk(int local, const DeviceBatch& b, Saved& s, const Tensor& dout, float token_weight,
                             float balance_weight) const {
  const Context& ctx = params_.context();
  Tensor dloss;
  if (chunks_.at(static_cast<std::size_t>(local)).head) {
    dloss = ctx.empty({b.shape.tokens()}, DType::f32);
    kernels::fill(ctx, dloss, token_weight);
  }
  return backward_chunk(local, b, s, dout, dloss, token_weight, balance_weight);
}

Tensor Model::backward_chunk(int local, const DeviceBatch& b, Saved& s, const Tensor& dout, const Tensor& token_weights,
                             float mtp_token_weight, float balance_weight) const {
  const kernels::ProfileRegion region(params_.context(), "backward");
  if (!chunks_.at(static_cast<std::size_t>(local)).head) return trunk_backward(local, b, s, dout, balance_weight);
  return trunk_backward(local, b, s, head_backward(b, s, token_weights, mtp_token_weight, balance_weight), balance_weight);
}

Tensor Model::score_tokens(const DeviceBatch& b) const {
  const Context& ctx = params_.context();
  const std::int64_t T = b.shape.tokens();
  Tensor losses;
  run_chunks(residual_rows(T), [&](int local, const Tensor& input) {
    ForwardResult r;
    const SavedPtr s = forward_chunk(local, b, input, r);
    if (chunks_[static_cast<std::size_t>(local)].head) losses = s->losses;
    return s->trunk;
  });
  if (pp_ != nullptr) {
    if (!losses.defined()) losses = ctx.empty({T}, DType::f32);
    pp_->broadcast(losses, pp_->size() - 1);
  }
  return losses;
}

Tensor Model::head_backward(const DeviceBatch& b, Saved& s, const Tensor& dloss, float mtp_token_weight,
                            float balance_weight) const {
  const Context& ctx = params_.context();
  const DType dt = params_.compute_dtype();
  const std::int64_t T = b.shape.tokens(), D = c_.dim, R = residual_rows(T);
  R1_CHECK(dloss.numel() == T && dloss.dtype() == DType::f32, "token weights ", dloss.str(), " for ", T, " tokens");
  // Head: dlogits overwrite the logits.
  std::optional<kernels::ProfileRegion> part(std::in_place, ctx, "head");
  kernels::cross_entropy_backward(ctx, s.logits, b.shard_targets, s.lse, dloss, s.logits);
  Tensor dnorm = ctx.empty({R, D}, dt);
  const Tensor dnorm_partial = partial_buffer(dnorm, T);
  linear_backward(ctx, s.logits, s.final_norm, *head_, dnorm_partial, false);
  tp_complete(dnorm_partial, dnorm);
  const Tensor dtrunk = final_norm_backward(b, s, dnorm);
  part.reset();

  if (!mtp_blocks_.empty()) {
    const kernels::ProfileRegion mtp_region(ctx, "mtp");
    const std::string p = "mtp.0";
    kernels::fill(ctx, dloss, mtp_token_weight * static_cast<float>(c_.mtp_lambda / static_cast<double>(c_.mtp_depth)));
    kernels::cross_entropy_backward(ctx, s.mtp_logits, b.shard_mtp_targets, s.mtp_lse, dloss, s.mtp_logits);
    Tensor dn = ctx.empty({R, D}, dt);
    const Tensor dn_partial = partial_buffer(dn, T);
    linear_backward(ctx, s.mtp_logits, s.mtp_norm, *head_, dn_partial, false);
    tp_complete(dn_partial, dn);
    Tensor dy = ctx.empty({R, D}, dt);
    kernels::rmsnorm_backward(ctx, dn, s.mtp_y, params_.get(p + ".norm").master, s.mtp_rstd, dy, params_.get(p + ".norm").grad);
    Tensor dx = ctx.empty({R, D}, dt);
    block_backward(*mtp_blocks_[0], b, *s.mtp_block, dy, dx, balance_weight);
    Tensor den = ctx.empty({R, D}, dt), dhn = ctx.empty({R, D}, dt);
    linear_backward(ctx, dx, s.mtp_en, params_.get(p + ".proj_e"), den, false);
    linear_backward(ctx, dx, s.mtp_hn, params_.get(p + ".proj_h"), dhn, false);
    Tensor demb = ctx.empty({R, D}, dt), dh = ctx.empty({R, D}, dt);
    kernels::rmsnorm_backward(ctx, den, s.mtp_emb, params_.get(p + ".enorm").master, s.mtp_en_rstd, demb,
                              params_.get(p + ".enorm").grad);
    kernels::embedding_backward(ctx, sp_gather(demb), b.shard_mtp_ids, embed_->grad);
    kernels::rmsnorm_backward(ctx, dhn, s.trunk, params_.get(p + ".hnorm").master, s.mtp_hn_rstd, dh,
                              params_.get(p + ".hnorm").grad);
    kernels::axpy(ctx, 1.0f, dh, dtrunk);
  }
  if (on_grads_complete) on_grads_complete(head_params_);
  return dtrunk;
}

const Tensor& Model::final_hidden(const Saved& s) { return s.final_norm; }

void Model::backward_from_hidden(const DeviceBatch& b, Saved& s, const Tensor& d_hidden, float balance_weight) const {
  R1_REQUIRE(!sp_, "the backward from the final hidden states (reward models) runs without sequence parallelism");
  const Context& ctx = params_.context();
  const DType dt = params_.compute_dtype();
  const std::int64_t T = b.shape.tokens(), D = c_.dim;
  R1_CHECK(d_hidden.rank() == 2 && d_hidden.dim(0) == T && d_hidden.dim(1) == D &&
               (d_hidden.dtype() == DType::f32 || d_hidden.dtype() == dt),
           "d final_hidden ", d_hidden.str(), " for ", T, " tokens of width ", D);
  Tensor dnorm = d_hidden;
  if (d_hidden.dtype() != dt) {  // the norm backward reads the compute dtype
    dnorm = ctx.empty({T, D}, dt);
    copy_into(ctx, d_hidden, dnorm);
  }
  trunk_backward(0, b, s, final_norm_backward(b, s, dnorm), balance_weight);
}

Tensor Model::final_norm_backward(const DeviceBatch& b, Saved& s, const Tensor& dnorm) const {
  const Context& ctx = params_.context();
  Tensor dtrunk = ctx.empty({residual_rows(b.shape.tokens()), c_.dim}, params_.compute_dtype());
  kernels::rmsnorm_backward(ctx, dnorm, s.trunk, norm_->master, s.final_rstd, dtrunk, norm_->grad);
  return dtrunk;
}

Tensor Model::trunk_backward(int local, const DeviceBatch& b, Saved& s, const Tensor& dtrunk, float balance_weight) const {
  const Context& ctx = params_.context();
  const std::int64_t R = residual_rows(b.shape.tokens()), D = c_.dim;
  const std::int64_t first = block_index(local);
  R1_CHECK(dtrunk.defined() && dtrunk.shape() == Shape({R, D}), "chunk ", chunks_[static_cast<std::size_t>(local)].index,
           ": output gradient ", dtrunk.defined() ? dtrunk.str() : "(none)", " for ", R, " token rows of width ", D);
  Tensor dy = dtrunk;
  for (std::size_t i = s.blocks.size(); i-- > 0;) {
    Tensor dx = ctx.empty({R, D}, params_.compute_dtype());
    const Block& blk = *blocks_[static_cast<std::size_t>(first) + i];
    block_backward(blk, b, *s.blocks[i], dy, dx, balance_weight);
    s.blocks[i].reset();  // free this block's activations as soon as they are used
    if (on_grads_complete) on_grads_complete(blk.params);
    dy = dx;
  }
  if (!chunks_[static_cast<std::size_t>(local)].embedding) return dy;
  kernels::embedding_backward(ctx, sp_gather(dy), b.shard_ids, embed_->grad);
  return Tensor{};
}

std::vector<std::span<Param* const>> Model::grads_complete_order() const {
  std::vector<std::span<Param* const>> out;
  for (std::size_t local = chunks_.size(); local-- > 0;) {
    if (chunks_[local].head) out.emplace_back(head_params_);
    const std::int64_t first = block_index(static_cast<int>(local));
    for (std::int64_t i = chunks_[local].layers; i-- > 0;) out.emplace_back(blocks_[static_cast<std::size_t>(first + i)]->params);
  }
  return out;
}

std::int64_t Model::block_index(int local) const {
  std::int64_t first = 0;
  for (int k = 0; k < local; ++k) first += chunks_.at(static_cast<std::size_t>(k)).layers;
  return first;
}

void Model::update_router_bias(const std::vector<std::vector<std::int64_t>>& counts, float gamma) const {
  const Context& ctx = params_.context();
  std::size_t i = 0;
  const auto update = [&](const Block& blk) {
    if (!blk.moe) return;
    R1_CHECK(i < counts.size(), "expert counts for ", counts.size(), " MoE layers, the model has more");
    Tensor h = Tensor::host({static_cast<std::int64_t>(counts[i].size())}, DType::i32);
    for (std::size_t e = 0; e < counts[i].size(); ++e) h.data<std::int32_t>()[e] = static_cast<std::int32_t>(counts[i][e]);
    blk.moe->update_bias(ctx, ctx.to_here(h), gamma);
    ++i;
  };
  for (const auto& b : blocks_) update(*b);
  for (const auto& b : mtp_blocks_) update(*b);
}

void Model::block_infer(const Block& blk, const BatchShape& b, const Tensor& x, const Tensor& y,
                        const std::function<void(const Tensor&, const Tensor&)>& attention) const {
  // The same ops in the same order as block_forward, so prefill and decode reproduce the training forward.
  const Context& ctx = params_.context();
  const DType dt = params_.compute_dtype();
  const std::int64_t T = b.tokens();
  const float eps = static_cast<float>(c_.norm_eps);
  const Tensor n1 = ctx.empty({T, c_.dim}, dt), rstd = ctx.empty({T}, DType::f32);
  kernels::rmsnorm_forward(ctx, x, blk.attn_norm->master, eps, n1, rstd);
  const Tensor h = ctx.empty({T, c_.dim}, dt);
  {
    const kernels::ProfileRegion region(ctx, "attn");
    attention(n1, h);
    tp_reduce(h);
  }
  kernels::axpy(ctx, 1.0f, x, h);
  const Tensor n2 = ctx.empty({T, c_.dim}, dt);
  kernels::rmsnorm_forward(ctx, h, blk.ffn_norm->master, eps, n2, rstd);
  const kernels::ProfileRegion region(ctx, blk.moe ? "moe" : "mlp");
  if (blk.moe) {
    blk.moe->infer(ctx, b, n2, y);
  } else {
    blk.mlp->forward(ctx, n2, y);
  }
  tp_reduce(y);
  kernels::axpy(ctx, 1.0f, h, y);
}

Tensor Model::head_logits(const Tensor& x, const Tensor& rows) const {
  const Context& ctx = params_.context();
  const DType dt = params_.compute_dtype();
  const std::int64_t B = rows.defined() ? rows.numel() : x.dim(0);
  const kernels::ProfileRegion region(ctx, "head");
  // embedding_forward is a row gather: the table is the trunk output. RMSNorm is per row, so norming the
  // gathered rows gives the training forward's values.
  Tensor last = x;
  if (rows.defined()) {
    last = ctx.empty({B, c_.dim}, dt);
    kernels::embedding_forward(ctx, x, rows, last);
  }
  const Tensor normed = ctx.empty({B, c_.dim}, dt);
  kernels::rmsnorm_forward(ctx, last, norm_->master, static_cast<float>(c_.norm_eps), normed,
                           ctx.empty({B}, DType::f32));
  const Tensor logits = ctx.empty({B, c_.vocab_size}, DType::f32);
  if (!tp_.active()) {
    kernels::gemm(ctx, normed, head_->compute, logits, {.trans_b = true});
    return logits;
  }
  // Vocabulary-parallel head: every rank's [B, V / tp] columns, gathered and placed side by side, so each
  // rank samples from the same whole rows.
  const std::int64_t n = head_->shape[0];
  const Tensor mine = ctx.empty({B, n}, DType::f32), all = ctx.empty({tp_.size() * B, n}, DType::f32);
  kernels::gemm(ctx, normed, head_->compute, mine, {.trans_b = true});
  {
    const kernels::ProfileRegion comm(ctx, "tp_comm");
    tp_.all_gather(mine, all);
  }
  for (int r = 0; r < tp_.size(); ++r) kernels::copy_columns(ctx, all.slice(r * B, (r + 1) * B), 0, logits, r * n, n);
  return logits;
}

Tensor Model::embed_tokens(const std::vector<std::int32_t>& ids) const {
  const Context& ctx = params_.context();
  const auto n = static_cast<std::int64_t>(ids.size());
  const Tensor x = ctx.empty({n, c_.dim}, params_.compute_dtype());
  const std::vector<std::int32_t> rows = tp_.active() ? shard_ids(ids, vocab_shard(c_.vocab_size, tp_)) : ids;
  kernels::embedding_forward(ctx, embed_->compute, ints_to(ctx, rows, {n}), x);
  tp_reduce(x);  // vocabulary-parallel: each rank holds its shard's rows (zero for the others)
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
  Tensor logits = chunks_.back().head ? head_logits(x, rows) : Tensor{};
  if (pp_ != nullptr) {  // every stage samples from the last stage's logits
    if (!logits.defined()) logits = ctx.empty({B, c_.vocab_size}, DType::f32);
    pp_->broadcast(logits, pp_->size() - 1);
  }
  return logits;
}

Tensor Model::run_chunks(std::int64_t rows, const std::function<Tensor(int local, const Tensor& input)>& run) const {
  const int stages = pp_ != nullptr ? pp_->size() : 1;
  Tensor out;
  for (std::size_t local = 0; local < chunks_.size(); ++local) {
    const ChunkInfo& ch = chunks_[local];
    Tensor input;
    if (!ch.embedding) {
      input = params_.context().empty({rows, c_.dim}, params_.compute_dtype());
      pp_->recv(input, (ch.index - 1) % stages);
    }
    out = run(static_cast<int>(local), input);
    if (!ch.head) pp_->send(out, (ch.index + 1) % stages);
  }
  return out;
}

KvCache Model::make_kv_cache(std::int64_t slots, std::int64_t max_len) const {
  R1_REQUIRE(max_len <= c_.max_seq_len, "a KV cache of ", max_len, " tokens exceeds [model] max_seq_len = ",
             c_.max_seq_len);
  KvCache cache;
  cache.max_len = max_len;
  for (const auto& blk : blocks_) cache.layers.push_back(blk->attn->make_cache(params_.context(), slots, max_len));
  cache.lengths.assign(static_cast<std::size_t>(slots), 0);
  return cache;
}

Tensor Model::prefill(KvCache& cache, const std::vector<std::vector<std::int32_t>>& prompts) const {
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
  shape.positions = ints_to(ctx, pos, {B * S});
  return infer(B * S, [&] { return embed_tokens(ids); }, ints_to(ctx, last, {B}),
               [&](std::size_t l, const Tensor& x, const Tensor& y) {
    block_infer(*blocks_[l], shape, x, y, [&](const Tensor& n1, const Tensor& out) {
      blocks_[l]->attn->prefill(ctx, shape, n1, out, cache.layers[l]);
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
    R1_REQUIRE(cache.lengths[i] >= 1 && cache.lengths[i] < cache.max_len, "decode: slot ", b, " holds ",
               cache.lengths[i], " tokens; it needs a prefilled prompt and room in the cache of ", cache.max_len);
    ++lengths[i];
  }
  return lengths;
}

Tensor Model::decode(KvCache& cache, const std::vector<std::int32_t>& tokens) const {
  const Context& ctx = params_.context();
  const kernels::ProfileRegion region(ctx, "decode");
  std::vector<std::int32_t> lengths = decode_lengths(cache, tokens);
  const Shape shape{cache.slots()};
  const Tensor logits = decode_trunk(cache, [&] { return embed_tokens(tokens); }, ints_to(ctx, cache.lengths, shape),
                                     ints_to(ctx, lengths, shape));
  cache.lengths = std::move(lengths);
  return logits;
}

bool Model::decodes_on_device(std::int64_t slots) const {
  const Context& ctx = params_.context();
  if (!ctx.is_cuda() || tp_.active() || lockstep_group() != nullptr || chunks_.size() != 1 || !chunks_[0].embedding ||
      !chunks_[0].head)
    return false;
  return std::all_of(blocks_.begin(), blocks_.end(),
                     [&](const auto& blk) { return !blk->moe || blk->moe->decode_on_device(ctx, slots); });
}

Tensor Model::decode_on_device(const KvCache& cache, const Tensor& ids, const Tensor& positions,
                               const Tensor& lengths) const {
  const Context& ctx = params_.context();
  const std::int64_t B = cache.slots();
  R1_CHECK(decodes_on_device(B), "decode_on_device: ", B, " slots do not decode on the device (decodes_on_device)");
  R1_CHECK(ids.shape() == Shape{B} && positions.shape() == Shape{B} && lengths.shape() == Shape{B},
           "decode_on_device: ids, positions and lengths must be i32 [", B, "]");
  return decode_trunk(cache, [&] {
    const Tensor x = ctx.empty({B, c_.dim}, params_.compute_dtype());
    kernels::embedding_forward(ctx, embed_->compute, ids, x);
    return x;
  }, positions, lengths);
}

Tensor Model::decode_trunk(const KvCache& cache, const std::function<Tensor()>& embed, const Tensor& positions,
                           const Tensor& lengths) const {
  const Context& ctx = params_.context();
  BatchShape shape;
  shape.batch = cache.slots();
  shape.seq = 1;
  shape.positions = positions;
  return infer(cache.slots(), embed, Tensor(), [&](std::size_t l, const Tensor& x, const Tensor& y) {
    block_infer(*blocks_[l], shape, x, y, [&](const Tensor& n1, const Tensor& out) {
      blocks_[l]->attn->decode(ctx, n1, positions, lengths, cache.layers[l], out);
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
    cache.lengths.clear();
    return;
  }
  // A row gather of [slots, L x width] views (embedding_forward copies rows exactly).
  const Tensor ids = ints_to(ctx, slots, {n});
  const auto gather = [&](const Tensor& t) {
    const Tensor out = ctx.empty({n, t.dim(1), t.dim(2)}, t.dtype());
    kernels::embedding_forward(ctx, t.view({t.dim(0), t.dim(1) * t.dim(2)}), ids, out.view({n, t.dim(1) * t.dim(2)}));
    return out;
  };
  for (auto& layer : cache.layers) layer = MlaAttention::Cache{gather(layer.kv), gather(layer.pe)};
  std::vector<std::int32_t> lengths;
  for (std::int32_t s : slots) lengths.push_back(cache.lengths[static_cast<std::size_t>(s)]);
  cache.lengths = lengths;
}

}  // namespace r1
