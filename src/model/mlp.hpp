// SwiGLU feed-forward block (DeepSeek-V3 dense layers and the MoE shared experts): down(silu(gate) * up),
// with the gate and up projections fused into one [2 I, D] weight.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "kernels/context.hpp"
#include "kernels/fp8.hpp"
#include "model/params.hpp"
#include "model/tensor_parallel.hpp"

namespace r1 {

class DenseMlp {
 public:
  // Registers `prefix.gate_up` [2 inter, D] (rows: gate, then up) and `prefix.down` [D, inter]. Under
  // tensor parallelism each rank holds inter / tp of the hidden columns (gate_up rows of both halves,
  // down columns), and forward's out and backward's dx are partial sums over `tp` (the caller reduces).
  DenseMlp(ParamStore& params, const std::string& prefix, std::int64_t dim, std::int64_t inter, TpGroup tp = {});

  // What the backward reads; all in the compute dtype.
  struct Saved {
    Tensor x;        // [T, D] the input
    Tensor gate_up;  // [T, 2 I] x gate_up^T
    Tensor h;        // [T, I] silu(gate) * up, the input of the down projection
    // precision fp8: h as the down projection takes it, 1 x 128 E4M3 tiles that SwiGLU writes in the same pass
    // (kernels::swiglu_forward_fp8; the bits down's own quantisation of h would give). Between hidden() and
    // project() only.
    std::optional<kernels::Fp8Tensor> h_fp8;
  };
  // out [T, D] = down(swiglu(x gate_up^T)); `accumulate` adds to out instead (the MoE adds its shared
  // experts to the routed output this way, with no temporary).
  Saved forward(const kernels::Context& ctx, const Tensor& x, const Tensor& out, bool accumulate = false) const;
  // dx overwritten (or added to with `accumulate`); the weight gradients are accumulated (beta 1).
  void backward(const kernels::Context& ctx, const Saved& saved, const Tensor& dout, const Tensor& dx,
                bool accumulate = false) const;

  // forward and backward in two halves each, the same kernels in the same order, so that the MoE can
  // run the first half while tokens are exchanged. hidden() is everything up to the down projection,
  // which project() then runs. backward_weights() accumulates both weight gradients and returns the
  // gradient of x gate_up^T ([T, 2 I]), from which backward_input() computes dx.
  Saved hidden(const kernels::Context& ctx, const Tensor& x) const;
  void project(const kernels::Context& ctx, Saved& saved, const Tensor& out, bool accumulate) const;  // drops h_fp8
  Tensor backward_weights(const kernels::Context& ctx, const Saved& saved, const Tensor& dout) const;
  void backward_input(const kernels::Context& ctx, const Saved& saved, const Tensor& dgate_up, const Tensor& dx,
                      bool accumulate) const;

  std::int64_t dim() const { return dim_; }
  std::int64_t inter() const { return inter_; }  // this rank's hidden columns

 private:
  std::int64_t dim_, inter_;
  Param& gate_up_;
  Param& down_;
};

}  // namespace r1
