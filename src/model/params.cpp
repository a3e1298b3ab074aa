#include "model/params.hpp"

#include "kernels/copy_columns.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/random.hpp"

namespace r1 {

std::uint32_t name_stream(const std::string& name) {
  std::uint32_t h = 2166136261u;
  for (unsigned char ch : name) h = (h ^ ch) * 16777619u;
  return h;
}

ParamStore::ParamStore(kernels::Context ctx, DType compute_dtype, bool fp8, bool fp8_pow2, bool fp8_cache_swiglu)
    : ctx_(std::move(ctx)), compute_dtype_(compute_dtype), fp8_(fp8), fp8_pow2_(fp8_pow2), fp8_cache_swiglu_(fp8_cache_swiglu) {
  R1_REQUIRE(compute_dtype == DType::f32 || compute_dtype == DType::bf16, "compute dtype must be f32 or bf16, got ",
             dtype_name(compute_dtype));
}

Param& ParamStore::add(const std::string& name, const Shape& shape, Init init, bool decay, bool trainable) {
  R1_CHECK(!contains(name), "parameter ", name, " registered twice");
  auto p = std::make_unique<Param>();
  p->name = name;
  p->shape = shape;
  p->init = init;
  p->decay = decay;
  p->trainable = trainable;
  p->master = ctx_.zeros(shape, DType::f32);
  if (trainable) p->grad = ctx_.zeros(shape, DType::f32);
  p->compute = compute_dtype_ == DType::f32 ? p->master : ctx_.zeros(shape, compute_dtype_);
  p->global_shape = shape;
  Param& ref = *p;
  index_[name] = p.get();
  params_.push_back(std::move(p));
  return ref;
}

Param& ParamStore::add_experts(const std::string& name, const Shape& global, std::int64_t first, std::int64_t count,
                               Init init) {
  R1_CHECK(global.rank() >= 1 && first >= 0 && count >= 1 && first + count <= global[0], "parameter ", name,
           ": experts [", first, ", ", first + count, ") of ", global.str());
  Shape local = global;
  local[0] = count;
  Param& p = add(name, local, init);
  p.global_shape = global;
  p.shard = {.dim = 0, .offset = first, .groups = 1};
  p.expert = true;
  return p;
}

Param& ParamStore::add_split(const std::string& name, const Shape& global, Shard shard, std::int64_t index,
                             std::int64_t parts, Init init, bool decay) {
  R1_CHECK(shard.dim >= 0 && shard.dim < global.rank() && shard.groups >= 1 && (shard.groups == 1 || shard.dim == 0) &&
               parts >= 1 && index >= 0 && index < parts && global[shard.dim] % (shard.groups * parts) == 0,
           "parameter ", name, ": ", parts, " tensor-parallel parts of ", shard.groups, " block(s) along dimension ",
           shard.dim, " of ", global.str());
  if (parts == 1) {
    Param& p = add(name, global, init, decay);
    p.tp = TpRole::split;
    return p;
  }
  const std::int64_t block = global[shard.dim] / shard.groups, part = block / parts;
  Shape local = global;
  local[shard.dim] = part * shard.groups;
  Param& p = add(name, local, init, decay);
  p.global_shape = global;
  p.shard = {.dim = shard.dim, .offset = index * part, .groups = shard.groups};
  p.tp = TpRole::split;
  return p;
}

std::vector<ShardPiece> shard_pieces(const Param& p) {
  const auto rank = static_cast<std::size_t>(p.shape.rank());
  if (!p.sharded() || p.shard.dim != 0) {
    ShardPiece whole{0, p.shape.rank() > 0 ? p.shape[0] : 1, std::vector<std::int64_t>(rank, 0)};
    if (p.sharded()) whole.offset[static_cast<std::size_t>(p.shard.dim)] = p.shard.offset;
    return {whole};
  }
  std::vector<ShardPiece> out;
  const std::int64_t local = p.shape[0] / p.shard.groups, global = p.global_shape[0] / p.shard.groups;
  for (std::int64_t g = 0; g < p.shard.groups; ++g) {
    ShardPiece piece{g * local, (g + 1) * local, std::vector<std::int64_t>(rank, 0)};
    piece.offset[0] = g * global + p.shard.offset;
    out.push_back(piece);
  }
  return out;
}

void copy_shard(const kernels::Context& ctx, const Param& p, const Tensor& global, const Tensor& local) {
  R1_CHECK(global.shape() == p.global_shape && local.shape() == p.shape, "parameter ", p.name, ": shard of ",
           global.str(), " into ", local.str());
  for (const ShardPiece& piece : shard_pieces(p)) {
    if (!p.sharded() || p.shard.dim == 0) {
      const std::int64_t n = piece.local_end - piece.local_begin, at = piece.offset.empty() ? 0 : piece.offset[0];
      kernels::cast(ctx, global.slice(at, at + n), local.slice(piece.local_begin, piece.local_end));
    } else {  // columns of a rank-2 tensor
      R1_CHECK(p.shape.rank() == 2 && p.shard.dim == 1, "parameter ", p.name, ": shards along dimension ", p.shard.dim,
               " of a rank-", p.shape.rank(), " tensor");
      kernels::copy_columns(ctx, global, piece.offset[1], local, 0, p.shape[1]);
    }
  }
}

Param& ParamStore::get(const std::string& name) {
  auto it = index_.find(name);
  R1_CHECK(it != index_.end(), "no parameter named ", name);
  return *it->second;
}
const Param& ParamStore::get(const std::string& name) const { return const_cast<ParamStore*>(this)->get(name); }

void ParamStore::initialize(std::uint64_t seed, double std) {
  for (const auto& p : params_) {
    switch (p->init) {
      case Init::normal: {
        // Keyed by the global element index, so a shard draws exactly its elements of the global tensor:
        // a block of rows directly, any other shard through the whole tensor drawn once.
        const RngKey key{seed, name_stream(p->name)};
        const auto normal = [&](const Tensor& t, std::uint64_t first) {
          kernels::fill_random(ctx_, t, kernels::Distribution::normal, 0.0f, static_cast<float>(std), key, first);
        };
        if (!p->sharded() || (p->shard.dim == 0 && p->shard.groups == 1)) {
          normal(p->master, static_cast<std::uint64_t>(p->sharded() ? p->shard.offset * (p->master.numel() / p->shape[0]) : 0));
          break;
        }
        const Tensor global = ctx_.empty(p->global_shape, DType::f32);
        normal(global, 0);
        copy_shard(ctx_, *p, global, p->master);
        break;
      }
      case Init::ones: kernels::fill(ctx_, p->master, 1.0f); break;
      case Init::zeros: kernels::fill(ctx_, p->master, 0.0f); break;
    }
  }
  refresh_compute();
  zero_grads();
}

void ParamStore::zero_grads() {
  for (const auto& p : params_)
    if (p->grad.defined()) kernels::fill(ctx_, p->grad, 0.0f);
}

void ParamStore::weights_changed() {
  for (const auto& p : params_) ++p->version;
}

void ParamStore::refresh_compute() {
  weights_changed();
  if (compute_dtype_ == DType::f32) return;
  for (const auto& p : params_) kernels::cast(ctx_, p->master, p->compute);
}

std::int64_t ParamStore::numel(bool trainable_only) const {
  std::int64_t n = 0;
  for (const auto& p : params_)
    if (p->trainable || !trainable_only) n += p->master.numel();
  return n;
}

}  // namespace r1
