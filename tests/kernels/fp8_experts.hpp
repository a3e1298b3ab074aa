// The routed experts' FP8 GEMMs one expert at a time, as model/linear ran them before its grouped path: each
// expert's operands quantised alone (scales [row tiles, column tiles]; the weight gradient's tokens zero-padded
// to 16 rows first) and one kernels::fp8_gemm per expert. The references of kernels/fp8.hpp's expert forms and of
// kernels::fp8_gemm_experts, on either backend.
#pragma once
#include <cstring>
#include <span>
#include <vector>

#include "kernels/copy_columns.hpp"
#include "kernels/fp8_gemm.hpp"
#include "kernels/test_util.hpp"

namespace r1::test {

// Token counts an expert's tiles must survive: empty, one, around 16 (cuBLASLt's inner multiple) and 128 (a tile).
inline std::vector<std::int64_t> ragged_offsets() {
  std::vector<std::int64_t> offsets{0};
  for (std::int64_t n : {17, 0, 1, 15, 16, 127, 129, 0}) offsets.push_back(offsets.back() + n);
  return offsets;
}

inline kernels::Fp8Tensor quantized_alone(const kernels::Context& ctx, const Tensor& x, int br, bool pow2,
                                          bool transposed) {
  kernels::Fp8Tensor q = transposed ? kernels::make_fp8(ctx, x.dim(1), x.dim(0), br, kernels::kFp8Tile)
                                    : kernels::make_fp8(ctx, x.dim(0), x.dim(1), br, kernels::kFp8Tile);
  q.pow2_scales = pow2;
  if (transposed) kernels::quantize_fp8_transposed(ctx, x, q);
  else kernels::quantize_fp8(ctx, x, q);
  return q;
}

// Expert e's rows of x in 1 x 128 tiles along the columns.
inline std::vector<kernels::Fp8Tensor> expert_rows_alone(const kernels::Context& ctx, const Tensor& x,
                                                         std::span<const std::int64_t> offsets, bool pow2) {
  std::vector<kernels::Fp8Tensor> out;
  for (std::size_t e = 0; e + 1 < offsets.size(); ++e)
    out.push_back(quantized_alone(ctx, x.slice(offsets[e], offsets[e + 1]), 1, pow2, false));
  return out;
}

// Expert e's rows of x zero-padded to a multiple of 16, transposed, in 1 x 128 tiles along its tokens.
inline std::vector<kernels::Fp8Tensor> expert_columns_alone(const kernels::Context& ctx, const Tensor& x,
                                                            std::span<const std::int64_t> offsets, bool pow2) {
  std::vector<kernels::Fp8Tensor> out;
  for (std::size_t e = 0; e + 1 < offsets.size(); ++e) {
    const std::int64_t n = offsets[e + 1] - offsets[e], n16 = (n + 15) / 16 * 16;
    const Tensor padded = ctx.zeros({n16, x.dim(1)}, x.dtype());
    if (n > 0) kernels::copy_columns(ctx, x.slice(offsets[e], offsets[e + 1]), 0, padded.slice(0, n), 0, x.dim(1));
    out.push_back(quantized_alone(ctx, padded, 1, pow2, true));
  }
  return out;
}

// Expert e's matrix of a 3-D tensor.
inline Tensor expert_matrix(const Tensor& t, std::int64_t e) { return t.slice(e, e + 1).view({t.dim(1), t.dim(2)}); }

// out rows of expert e = in_e W_e^T (dgrad: W_e^T's blocks, so out = in_e W_e), W [E, out, in] quantised alone.
inline void expert_loop_forward(const kernels::Context& ctx, const std::vector<kernels::Fp8Tensor>& in, const Tensor& w,
                                bool dgrad, bool pow2, const Tensor& out, std::span<const std::int64_t> offsets) {
  for (std::size_t e = 0; e + 1 < offsets.size(); ++e) {
    if (offsets[e + 1] == offsets[e]) continue;
    const kernels::Fp8Tensor we = quantized_alone(ctx, expert_matrix(w, static_cast<std::int64_t>(e)), kernels::kFp8Tile,
                                                  pow2, dgrad);
    kernels::fp8_gemm(ctx, in[e], we, out.slice(offsets[e], offsets[e + 1]));
  }
}

// dW_e += dy_e^T x_e for every expert with tokens.
inline void expert_loop_wgrad(const kernels::Context& ctx, const Tensor& dy, const Tensor& x, bool pow2, const Tensor& dw,
                              std::span<const std::int64_t> offsets) {
  const auto dyq = expert_columns_alone(ctx, dy, offsets, pow2), xq = expert_columns_alone(ctx, x, offsets, pow2);
  for (std::size_t e = 0; e + 1 < offsets.size(); ++e)
    if (offsets[e + 1] > offsets[e])
      kernels::fp8_gemm(ctx, dyq[e], xq[e], expert_matrix(dw, static_cast<std::int64_t>(e)), {.beta = 1.0f});
}

// Whether two tensors (either backend) hold the same bytes.
inline bool same_bytes(const Tensor& a, const Tensor& b) {
  if (a.nbytes() != b.nbytes()) return false;
  const Tensor ha = to_host(a), hb = to_host(b);
  return std::memcmp(ha.raw(), hb.raw(), ha.nbytes()) == 0;
}
// ... and two FP8 operands the same data and scales (in the same layout).
inline bool same_fp8(const kernels::Fp8Tensor& a, const kernels::Fp8Tensor& b) {
  return a.gemm_layout == b.gemm_layout && a.data.shape() == b.data.shape() && same_bytes(a.data, b.data) &&
         same_bytes(a.scale_inv, b.scale_inv);
}

}  // namespace r1::test
