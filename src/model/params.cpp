#include "model/params.hpp"

#include "kernels/elementwise.hpp"
#include "kernels/random.hpp"

namespace r1 {

std::uint32_t name_stream(const std::string& name) {
  std::uint32_t h = 2166136261u;
  for (unsigned char ch : name) h = (h ^ ch) * 16777619u;
  return h;
}

ParamStore::ParamStore(kernels::Context ctx, DType compute_dtype) : ctx_(std::move(ctx)), compute_dtype_(compute_dtype) {
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
  p.row_offset = first;
  p.expert = true;
  return p;
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
      case Init::normal:
        // Keyed by the global element index, so an expert shard draws exactly its rows of the global tensor.
        kernels::fill_random(ctx_, p->master, kernels::Distribution::normal, 0.0f, static_cast<float>(std),
                             RngKey{seed, name_stream(p->name)},
                             p->row_offset == 0 ? 0 : static_cast<std::uint64_t>(p->row_offset * (p->master.numel() / p->shape[0])));
        break;
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

void ParamStore::refresh_compute() {
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
