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

struct Fp8Weight;  // a weight's FP8 copies for precision fp8 (model/linear.hpp)

// How a tensor-parallel group holds a parameter (docs/parallel.md):
//   replicated  every TP rank holds all of it and computes the whole gradient (same on every rank);
//   partial     every TP rank holds all of it but computes only its heads' or tokens' share of the
//               gradient: the shares are summed over TP before the optimizer step;
//   split       every TP rank holds its own shard (Param::shard), with the gradient of that shard.
enum class TpRole { replicated, partial, split };

// Where a rank's tensor sits in the global tensor. Along `dim` the global extent is `groups` equal
// blocks (the fused [gate | up] rows are two); of each block this rank holds the `shape[dim] / groups`
// elements starting at `offset`. dim -1: the whole tensor. groups > 1 only along dim 0.
struct Shard {
  int dim = -1;
  std::int64_t offset = 0, groups = 1;
};

struct Param {
  std::string name;     // e.g. "layers.3.attn.kv_b_proj" (docs/model.md lists every name)
  Shape shape;
  Init init = Init::normal;
  bool decay = true;    // weight decay applies (not to norms and embeddings)
  bool trainable = true;  // false for buffers such as the router's selection bias
  Tensor master;        // f32, the optimizer's copy
  Tensor grad;          // f32, accumulated over micro-batches (undefined for buffers)
  Tensor compute;       // what forward reads: `master` itself for f32 compute, else a bf16 copy
  // Expert and tensor parallelism: this rank holds the `shard` of the global tensor `global_shape`
  // (global_shape == shape when not sharded).
  Shape global_shape;
  Shard shard;
  TpRole tp = TpRole::replicated;
  bool expert = false;  // a routed-expert tensor: replicated over the expert-data-parallel group, not DP
  // Precision fp8 (model/linear.hpp): set on the weights whose GEMMs run in FP8, holding their quantised
  // copies, which are made again once `version` moves (ParamStore::weights_changed).
  std::shared_ptr<Fp8Weight> fp8;
  std::uint64_t version = 0;
  bool sharded() const { return !(global_shape == shape); }
};

// The rows [local_begin, local_end) of a rank's tensor (the whole tensor unless the shard is along dim 0
// in several groups) and where they sit in the global tensor: the boxes a checkpoint reads and writes.
struct ShardPiece {
  std::int64_t local_begin = 0, local_end = 0;
  std::vector<std::int64_t> offset;  // one per dimension
};
std::vector<ShardPiece> shard_pieces(const Param& p);
// local = this rank's shard of `global` (a tensor of p's global shape; f32 or bf16, like local).
void copy_shard(const kernels::Context& ctx, const Param& p, const Tensor& global, const Tensor& local);

// Owns every parameter of a model in one context. Layers register their parameters at construction
// and keep the returned references (stable: parameters are never removed).
class ParamStore {
 public:
  // fp8: the linear layers that model/linear.hpp runs in FP8 mark their weights so ([train] precision fp8);
  // fp8_pow2: their tiles' scales are powers of two ([train] fp8_scale = pow2); fp8_cache_swiglu: the routed
  // experts keep their SwiGLU input in FP8 for the backward ([train] fp8_cache_swiglu_input, MoeFfn).
  ParamStore(kernels::Context ctx, DType compute_dtype, bool fp8 = false, bool fp8_pow2 = false,
             bool fp8_cache_swiglu = false);
  Param& add(const std::string& name, const Shape& shape, Init init, bool decay = true, bool trainable = true);
  // A routed-expert tensor of global shape `global` [E, ...] of which this rank holds the `count` experts
  // starting at `first` (expert parallelism; first = 0, count = E on one rank). Initialised by global index.
  Param& add_experts(const std::string& name, const Shape& global, std::int64_t first, std::int64_t count, Init init);
  // A tensor-parallel shard: of global shape `global`, this rank (of `parts`, at `index`) holds 1/parts
  // of every one of `shard.groups` blocks along `shard.dim` (shard.offset is set here). parts = 1: the
  // whole tensor. Initialised as the same elements of the global tensor.
  Param& add_split(const std::string& name, const Shape& global, Shard shard, std::int64_t index, std::int64_t parts,
                   Init init, bool decay = true);
  Param& get(const std::string& name);
  const Param& get(const std::string& name) const;
  bool contains(const std::string& name) const { return index_.count(name) > 0; }
  const std::vector<std::unique_ptr<Param>>& all() const { return params_; }
  const kernels::Context& context() const { return ctx_; }
  DType compute_dtype() const { return compute_dtype_; }
  bool fp8() const { return fp8_; }
  bool fp8_pow2() const { return fp8_pow2_; }
  bool fp8_cache_swiglu() const { return fp8_ && fp8_cache_swiglu_; }

  // Fills every master weight: normal(0, std) keyed by (seed, the parameter's name, global element
  // index), norms 1, biases 0; then refreshes the compute copies and zeroes the gradients.
  void initialize(std::uint64_t seed, double std);
  void zero_grads();
  void refresh_compute();  // compute = cast(master) after the master changed (load, optimizer); weights_changed()
  void weights_changed();  // the masters moved: every FP8 copy is stale (the optimizer step, refresh_compute)
  std::int64_t numel(bool trainable_only = true) const;

 private:
  kernels::Context ctx_;
  DType compute_dtype_;
  bool fp8_ = false, fp8_pow2_ = false, fp8_cache_swiglu_ = false;
  std::vector<std::unique_ptr<Param>> params_;
  std::map<std::string, Param*> index_;
};

// Stable 32-bit stream id of a parameter name (FNV-1a), so each tensor's init draws its own stream.
std::uint32_t name_stream(const std::string& name);

}  // namespace r1
