// Model parameters: FP32 master weights and gradients, the compute-precision copy the layers read
// (bf16 on GPU, the master itself in f32 runs), and reproducible initialisation by global index.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.hpp"
#include "kernels/context.hpp"

namespace r1 {

enum class Init { normal, ones, zeros };

struct Param {
  std::string name;     // e.g. "layers.3.attn.kv_b_proj" (docs/model.md lists every name)
  Shape shape;
  Init init = Init::normal;
  bool decay = true;    // weight decay applies (not to norms and embeddings)
  bool trainable = true;  // false for buffers such as the router's selection bias
  Tensor master;        // f32, the optimizer's copy
  Tensor grad;          // f32, accumulated over micro-batches (undefined for buffers)
  Tensor compute;       // what forward reads: `master` itself for f32 compute, else a bf16 copy
  // Expert parallelism: this rank holds rows [row_offset, row_offset + shape[0]) of the global tensor
  // `global_shape` (its share of the stacked routed experts); global_shape == shape when not sharded.
  Shape global_shape;
  std::int64_t row_offset = 0;
  bool expert = false;  // a routed-expert tensor: replicated over the expert-data-parallel group, not DP
  bool sharded() const { return !(global_shape == shape); }
};

// Owns every parameter of a model in one context. Layers register their parameters at construction
// and keep the returned references (stable: parameters are never removed).
class ParamStore {
 public:
  ParamStore(kernels::Context ctx, DType compute_dtype);
  Param& add(const std::string& name, const Shape& shape, Init init, bool decay = true, bool trainable = true);
  // A routed-expert tensor of global shape `global` [E, ...] of which this rank holds the `count` experts
  // starting at `first` (expert parallelism; first = 0, count = E on one rank). Initialised by global index.
  Param& add_experts(const std::string& name, const Shape& global, std::int64_t first, std::int64_t count, Init init);
  Param& get(const std::string& name);
  const Param& get(const std::string& name) const;
  bool contains(const std::string& name) const { return index_.count(name) > 0; }
  const std::vector<std::unique_ptr<Param>>& all() const { return params_; }
  const kernels::Context& context() const { return ctx_; }
  DType compute_dtype() const { return compute_dtype_; }

  // Fills every master weight: normal(0, std) keyed by (seed, the parameter's name, global element
  // index), norms 1, biases 0; then refreshes the compute copies and zeroes the gradients.
  void initialize(std::uint64_t seed, double std);
  void zero_grads();
  void refresh_compute();  // compute = cast(master) after the master changed (load, optimizer)
  std::int64_t numel(bool trainable_only = true) const;

 private:
  kernels::Context ctx_;
  DType compute_dtype_;
  std::vector<std::unique_ptr<Param>> params_;
  std::map<std::string, Param*> index_;
};

// Stable 32-bit stream id of a parameter name (FNV-1a), so each tensor's init draws its own stream.
std::uint32_t name_stream(const std::string& name);

}  // namespace r1
