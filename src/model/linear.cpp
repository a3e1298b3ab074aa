#include "model/linear.hpp"

#include <array>

#include "kernels/fp8_gemm.hpp"
#include "kernels/gemm.hpp"
#include "kernels/grouped_gemm.hpp"
#include "model/wgrad_deferral.hpp"

namespace r1 {

using kernels::Context;
using kernels::Fp8Tensor;

namespace {
constexpr int kTile = kernels::kFp8Tile;

std::pair<std::int64_t, std::int64_t> row_range(const Param& w, Rows rows) {
  return {rows.begin, rows.end < 0 ? w.master.dim(w.master.rank() - 2) : rows.end};
}
Tensor weight_rows(const Tensor& t, std::pair<std::int64_t, std::int64_t> r) {
  return r.first == 0 && r.second == t.dim(0) ? t : t.slice(r.first, r.second);
}
// Expert e's [out, in] matrix of a 3-D weight, or the 2-D weight itself.
Tensor expert(const Tensor& t, std::int64_t e) {
  return t.rank() == 2 ? t : t.slice(e, e + 1).view({t.dim(1), t.dim(2)});
}

// x [R, C] quantised in (br x 128) tiles along C, or (transposed) x^T [C, R] along R, with w's scale rule.
Fp8Tensor quantize_rows(const Context& ctx, const Tensor& x, const Param& w, int br = 1) {
  Fp8Tensor q = kernels::make_fp8(ctx, x.dim(0), x.dim(1), br, kTile);
  q.pow2_scales = w.fp8->pow2_scales;
  kernels::quantize_fp8(ctx, x, q);
  return q;
}
Fp8Tensor quantize_columns(const Context& ctx, const Tensor& x, const Param& w, int br = 1) {
  Fp8Tensor q = kernels::make_fp8(ctx, x.dim(1), x.dim(0), br, kTile);
  q.pow2_scales = w.fp8->pow2_scales;
  kernels::quantize_fp8_transposed(ctx, x, q);
  return q;
}
// The activations as the GEMM takes them, in one launch with the scales in its layout (the experts' forms with
// one expert): x in 1 x 128 tiles along C, or x^T along R, zero-padded to 16 rows (the weight gradient's).
Fp8Tensor gemm_rows(const Context& ctx, const Tensor& x, const Param& w) {
  const std::array<std::int64_t, 2> all{0, x.dim(0)};
  return kernels::quantize_fp8_expert_rows(ctx, x, all, w.fp8->pow2_scales)[0];
}
Fp8Tensor gemm_columns(const Context& ctx, const Tensor& x, const Param& w) {
  const std::array<std::int64_t, 2> all{0, x.dim(0)};
  return kernels::quantize_fp8_expert_columns(ctx, x, all, w.fp8->pow2_scales)[0];
}

// The weight's FP8 copies (rows r of every expert), made from the master once per version.
const Fp8Weight::Copy& fp8_copy(const Context& ctx, const Param& w, std::pair<std::int64_t, std::int64_t> r) {
  Fp8Weight::Copy& c = w.fp8->copies[r];
  if (c.made && c.version == w.version) return c;
  const std::int64_t experts = w.master.rank() == 3 ? w.master.dim(0) : 1;
  c.w.clear();
  c.wt.clear();
  for (std::int64_t e = 0; e < experts; ++e) {
    const Tensor m = weight_rows(expert(w.master, e), r);
    c.w.push_back(kernels::to_gemm_layout(ctx, quantize_rows(ctx, m, w, kTile)));
    c.wt.push_back(kernels::to_gemm_layout(ctx, quantize_columns(ctx, m, w, kTile)));
  }
  c.version = w.version;
  c.made = true;
  return c;
}

float beta(bool accumulate) { return accumulate ? 1.0f : 0.0f; }

// Under a DeferWgrad scope (a pipeline schedule's B pass), queues `run` on copies of dy and x for its W pass
// and returns true: the backward goes on to reuse and free its buffers, and W runs the same GEMM later.
template <class Run> bool deferred(const Context& ctx, const Tensor& dy, const Tensor& x, Run run) {
  WgradQueue* queue = deferring_wgrad();
  if (queue == nullptr) return false;
  queue->push([ctx, dy = ctx.to_here(dy), x = ctx.to_here(x), run] { run(ctx, dy, x); }, dy.nbytes() + x.nbytes());
  return true;
}
}  // namespace

Param& use_fp8(const ParamStore& store, Param& w) {
  if (!store.fp8()) return w;
  w.fp8 = std::make_shared<Fp8Weight>();
  w.fp8->pow2_scales = store.fp8_pow2();
  return w;
}

void linear_forward(const Context& ctx, const Tensor& x, const Param& w, const Tensor& y, bool accumulate, Rows rows) {
  const auto r = row_range(w, rows);
  if (!w.fp8) return kernels::gemm(ctx, x, weight_rows(w.compute, r), y, {.trans_b = true, .beta = beta(accumulate)});
  kernels::fp8_gemm(ctx, gemm_rows(ctx, x, w), fp8_copy(ctx, w, r).w[0], y, {.beta = beta(accumulate)});
}

void linear_dgrad(const Context& ctx, const Tensor& dy, const Param& w, const Tensor& dx, bool accumulate, Rows rows) {
  const auto r = row_range(w, rows);
  if (!w.fp8) return kernels::gemm(ctx, dy, weight_rows(w.compute, r), dx, {.beta = beta(accumulate)});
  kernels::fp8_gemm(ctx, gemm_rows(ctx, dy, w), fp8_copy(ctx, w, r).wt[0], dx, {.beta = beta(accumulate)});
}

void linear_wgrad(const Context& ctx, const Tensor& dy, const Tensor& x, const Param& w, Rows rows) {
  if (deferred(ctx, dy, x, [&w, rows](const Context& c, const Tensor& d, const Tensor& a) { linear_wgrad(c, d, a, w, rows); }))
    return;
  const Tensor dw = weight_rows(w.grad, row_range(w, rows));
  if (!w.fp8) return kernels::gemm(ctx, dy, x, dw, {.trans_a = true, .beta = 1.0f});
  // dW [out, in] = dy^T x: both operands quantised along the tokens, the inner dimension here.
  kernels::fp8_gemm(ctx, gemm_columns(ctx, dy, w), gemm_columns(ctx, x, w), dw, {.beta = 1.0f});
}

void linear_backward(const Context& ctx, const Tensor& dy, const Tensor& x, const Param& w, const Tensor& dx,
                     bool accumulate_dx) {
  linear_wgrad(ctx, dy, x, w);
  linear_dgrad(ctx, dy, w, dx, accumulate_dx);
}

namespace {
// out_e = in_e W_e^T for every expert in FP8, in one grouped call: `in` holds each expert's input in 1 x 128
// tiles (scales in the GEMM's layout), W_e is the cached weight copy `which` (W for the forward, W^T for dgrad).
void grouped_fp8(const Context& ctx, const std::vector<Fp8Tensor>& in, const Param& w,
                 std::vector<Fp8Tensor> Fp8Weight::Copy::*which, const Tensor& out, std::span<const std::int64_t> offsets) {
  const Fp8Weight::Copy& c = fp8_copy(ctx, w, row_range(w, {}));
  std::vector<Tensor> outs;
  for (std::size_t e = 0; e + 1 < offsets.size(); ++e) outs.push_back(out.slice(offsets[e], offsets[e + 1]));
  kernels::fp8_gemm_experts(ctx, in, c.*which, outs);
}

// dW_e += dy_e^T x_e: per expert its tokens are the inner dimension, dy_e^T and x_e^T quantised in 1 x 128
// tiles from its first token (every expert at once, each padded with zeros to 16 tokens for cuBLASLt).
void grouped_fp8_wgrad(const Context& ctx, const Tensor& dy, const Tensor& x, const Param& w,
                       std::span<const std::int64_t> offsets) {
  R1_REQUIRE(static_cast<std::int64_t>(offsets.size()) == w.grad.dim(0) + 1, "grouped_linear_wgrad: ", w.name, " has ",
             w.grad.dim(0), " experts, the offsets ", offsets.size(), " values");
  const bool pow2 = w.fp8->pow2_scales;
  const std::vector<Fp8Tensor> dyq = kernels::quantize_fp8_expert_columns(ctx, dy, offsets, pow2);
  const std::vector<Fp8Tensor> xq = kernels::quantize_fp8_expert_columns(ctx, x, offsets, pow2);
  std::vector<Tensor> dw;
  for (std::size_t e = 0; e + 1 < offsets.size(); ++e) dw.push_back(expert(w.grad, static_cast<std::int64_t>(e)));
  kernels::fp8_gemm_experts(ctx, dyq, xq, dw, {.beta = 1.0f});
}
}  // namespace

void grouped_linear_forward(const Context& ctx, const Tensor& x, const Param& w, const Tensor& y,
                            std::span<const std::int64_t> offsets) {
  if (!w.fp8) return kernels::grouped_gemm(ctx, x, w.compute, y, offsets, {.trans_b = true});
  grouped_fp8(ctx, kernels::quantize_fp8_expert_rows(ctx, x, offsets, w.fp8->pow2_scales), w, &Fp8Weight::Copy::w, y,
              offsets);
}

void grouped_linear_dgrad(const Context& ctx, const Tensor& dy, const Param& w, const Tensor& dx,
                          std::span<const std::int64_t> offsets) {
  if (!w.fp8) return kernels::grouped_gemm(ctx, dy, w.compute, dx, offsets);
  grouped_fp8(ctx, kernels::quantize_fp8_expert_rows(ctx, dy, offsets, w.fp8->pow2_scales), w, &Fp8Weight::Copy::wt, dx,
              offsets);
}

void grouped_linear_wgrad(const Context& ctx, const Tensor& dy, const Tensor& x, const Param& w,
                          std::span<const std::int64_t> offsets) {
  if (deferred(ctx, dy, x, [&w, o = std::vector<std::int64_t>(offsets.begin(), offsets.end())](
                               const Context& c, const Tensor& d, const Tensor& a) { grouped_linear_wgrad(c, d, a, w, o); }))
    return;
  if (!w.fp8) return kernels::grouped_gemm(ctx, dy, x, w.grad, offsets, {.trans_a = true, .beta = 1.0f});
  grouped_fp8_wgrad(ctx, dy, x, w, offsets);
}

namespace {
void require_fp8_input(const Fp8Tensor& xq, const Param& w, const char* op) {
  R1_REQUIRE(w.fp8 && xq.block_rows == 1 && xq.block_cols == kTile, op, ": ", w.name,
             " takes a cached FP8 input only in precision fp8, in 1 x 128 tiles");
}
// x as saved: the cached tiles dequantised in f32 (exact with pow2 scales; otherwise one f32 rounding).
Tensor dequantized(const Context& ctx, const Fp8Tensor& xq) {
  const Tensor x = ctx.empty(xq.data.shape(), DType::f32);
  kernels::dequantize_fp8(ctx, xq, x);
  return x;
}
}  // namespace

Fp8Tensor linear_quantize_input(const Context& ctx, const Tensor& x, const Param& w) {
  R1_REQUIRE(w.fp8, "linear_quantize_input: ", w.name, " is not trained in FP8");
  return quantize_rows(ctx, x, w);
}

Fp8Tensor linear_input_tiles(const Context& ctx, std::int64_t rows, std::int64_t cols, const Param& w) {
  R1_REQUIRE(w.fp8, "linear_input_tiles: ", w.name, " is not trained in FP8");
  Fp8Tensor q = kernels::make_fp8(ctx, rows, cols, 1, kTile);
  q.pow2_scales = w.fp8->pow2_scales;
  return q;
}

void grouped_linear_forward(const Context& ctx, const Fp8Tensor& xq, const Param& w, const Tensor& y,
                            std::span<const std::int64_t> offsets) {
  require_fp8_input(xq, w, "grouped_linear_forward");
  grouped_fp8(ctx, kernels::fp8_expert_rows(ctx, xq, offsets), w, &Fp8Weight::Copy::w, y, offsets);
}

void grouped_linear_wgrad(const Context& ctx, const Tensor& dy, const Fp8Tensor& xq, const Param& w,
                          std::span<const std::int64_t> offsets) {
  require_fp8_input(xq, w, "grouped_linear_wgrad");
  // Through the Tensor form, so a pipeline W pass defers it like every other weight GEMM.
  grouped_linear_wgrad(ctx, dy, dequantized(ctx, xq), w, offsets);
}

void linear_forward(const Context& ctx, const Fp8Tensor& xq, const Param& w, const Tensor& y, bool accumulate) {
  require_fp8_input(xq, w, "linear_forward");
  const std::array<std::int64_t, 2> all{0, xq.data.dim(0)};
  kernels::fp8_gemm(ctx, kernels::fp8_expert_rows(ctx, xq, all)[0], fp8_copy(ctx, w, row_range(w, {})).w[0], y,
                    {.beta = beta(accumulate)});
}

void grouped_linear_dgrad(const Context& ctx, const Fp8Tensor& dyq, const Param& w, const Tensor& dx,
                          std::span<const std::int64_t> offsets) {
  require_fp8_input(dyq, w, "grouped_linear_dgrad");
  grouped_fp8(ctx, kernels::fp8_expert_rows(ctx, dyq, offsets), w, &Fp8Weight::Copy::wt, dx, offsets);
}

void grouped_linear_wgrad(const Context& ctx, const Fp8Tensor& dyq, const Tensor& x, const Param& w,
                          std::span<const std::int64_t> offsets) {
  require_fp8_input(dyq, w, "grouped_linear_wgrad");
  grouped_linear_wgrad(ctx, dequantized(ctx, dyq), x, w, offsets);
}

}  // namespace r1
