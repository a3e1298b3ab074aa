// The three GEMMs of a linear layer y = x W^T, W [out, in] (docs/model.md): the forward, the input gradient
// dx (+)= dy W and the weight gradient dW += dy^T x, and their grouped forms for the routed experts
// (W [E, out, in], rows of x grouped by expert). One place dispatches on the precision: a weight marked by
// use_fp8 runs all three as block-scaled FP8 GEMMs (DeepSeek-V3's recipe: x, dy quantised per call in 1 x 128
// tiles, W once per optimizer step in 128 x 128 blocks, FP32 accumulation into an FP32 gradient); every
// other weight runs them as kernels::gemm in the compute dtype.
#pragma once
#include <cstdint>
#include <map>
#include <span>
#include <utility>
#include <vector>

#include "kernels/fp8.hpp"
#include "model/params.hpp"

namespace r1 {

// A weight's FP8 copies, per block of rows used as a weight of its own and per expert: W in 128 x 128 blocks
// (forward) and W^T (input gradient), quantised from the master at `version`.
struct Fp8Weight {
  struct Copy {
    std::uint64_t version = 0;
    bool made = false;
    std::vector<kernels::Fp8Tensor> w, wt;  // one per expert (one for a 2-D weight)
  };
  std::map<std::pair<std::int64_t, std::int64_t>, Copy> copies;
  bool pow2_scales = false;  // every tile of its GEMMs, weights and activations alike ([train] fp8_scale)
};

// Marks w for FP8 GEMMs when the store trains in FP8 (ParamStore::fp8); returns w.
Param& use_fp8(const ParamStore& store, Param& w);

// Rows [begin, end) of a 2-D weight used as a weight of its own (MLA's kv_a_proj: latent, then rope key);
// end -1: to the last row.
struct Rows {
  std::int64_t begin = 0, end = -1;
};

void linear_forward(const kernels::Context& ctx, const Tensor& x, const Param& w, const Tensor& y, bool accumulate = false,
                    Rows rows = {});
void linear_dgrad(const kernels::Context& ctx, const Tensor& dy, const Param& w, const Tensor& dx, bool accumulate,
                  Rows rows = {});
void linear_wgrad(const kernels::Context& ctx, const Tensor& dy, const Tensor& x, const Param& w, Rows rows = {});
// linear_wgrad, then linear_dgrad.
void linear_backward(const kernels::Context& ctx, const Tensor& dy, const Tensor& x, const Param& w, const Tensor& dx,
                     bool accumulate_dx);

// `offsets` (E+1 host values) split the rows of x, y, dy, dx by expert, as for kernels::grouped_gemm. In FP8
// every expert's operand is quantised in one launch, scales in the GEMM's layout (kernels/fp8.hpp's expert
// forms), and the experts' GEMMs run as one kernels::fp8_gemm_experts call: bit-equal to one fp8_gemm per expert.
void grouped_linear_forward(const kernels::Context& ctx, const Tensor& x, const Param& w, const Tensor& y,
                            std::span<const std::int64_t> offsets);
void grouped_linear_dgrad(const kernels::Context& ctx, const Tensor& dy, const Param& w, const Tensor& dx,
                          std::span<const std::int64_t> offsets);
void grouped_linear_wgrad(const kernels::Context& ctx, const Tensor& dy, const Tensor& x, const Param& w,
                          std::span<const std::int64_t> offsets);

// Inputs kept for the backward in FP8, as DeepSeek-V3 keeps the MoE up-projection's (quantised once, before
// the expert dispatch): the 1 x 128 tiles the forward quantises x into (w's scale rule) are the saved
// activation. The weight gradient takes x along the tokens instead: dequantised (in f32) and quantised again
// transposed. With power-of-two scales that second rounding is exact (but for subnormals); with FP32 scales
// it rounds each element again, on its 128-token tile's grid.
kernels::Fp8Tensor linear_quantize_input(const kernels::Context& ctx, const Tensor& x, const Param& w);
// An empty [rows, cols] input in w's 1 x 128 tiles and scale rule, for a kernel that quantises its output
// into it (kernels::swiglu_forward_fp8 for the experts' down projection).
kernels::Fp8Tensor linear_input_tiles(const kernels::Context& ctx, std::int64_t rows, std::int64_t cols, const Param& w);
void grouped_linear_forward(const kernels::Context& ctx, const kernels::Fp8Tensor& xq, const Param& w, const Tensor& y,
                            std::span<const std::int64_t> offsets);
// linear_forward from x already in w's 1 x 128 tiles (e.g. SwiGLU's fused output): the same bits.
void linear_forward(const kernels::Context& ctx, const kernels::Fp8Tensor& xq, const Param& w, const Tensor& y,
                    bool accumulate = false);
void grouped_linear_wgrad(const kernels::Context& ctx, const Tensor& dy, const kernels::Fp8Tensor& xq, const Param& w,
                          std::span<const std::int64_t> offsets);
// The output gradient in FP8, as DeepSeek-V3 sends the routed experts' to their ranks: 1 x 128 tiles along the
// output features (linear_quantize_input's rule, quantised before the exchange; a row's tiles are its own, so
// the same bits as quantising after it). dgrad runs from the tiles, as grouped_linear_dgrad quantises dy
// itself (the same bits); wgrad takes dy along the tokens: dequantised (f32) and quantised again transposed,
// as for a cached input.
void grouped_linear_dgrad(const kernels::Context& ctx, const kernels::Fp8Tensor& dyq, const Param& w, const Tensor& dx,
                          std::span<const std::int64_t> offsets);
void grouped_linear_wgrad(const kernels::Context& ctx, const kernels::Fp8Tensor& dyq, const Tensor& x, const Param& w,
                          std::span<const std::int64_t> offsets);

}  // namespace r1
