// Op cases of attention: the fused causal attention forward and backward (tensor-core and CUDA-core paths,
// segments) and copy_columns, MLA's per-head column splits around it.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/attention.hpp"
#include "kernels/copy_columns.hpp"
#include "kernels/op_cases.hpp"
#include "kernels/test_util.hpp"

namespace r1::test {

namespace {
using kernels::Context;

struct AttentionSpec {
  std::int64_t B, S, H, Dqk, Dv;
  DType dt;
  std::vector<std::int32_t> segments;  // [B, S], or empty for none
  float scale;
  float qk_std;
  std::uint32_t seed_q, seed_k, seed_v, seed_dout;  // seed_dout 0: the forward alone
  double out_tol, grad_tol;                         // fractions of the largest output and gradient
  bool grad = false;
  std::int64_t Hkv = 0;  // K/V heads (grouped-query attention); 0: H
  std::int64_t kv_heads() const { return Hkv > 0 ? Hkv : H; }
};

std::string attention_config(const AttentionSpec& s) {
  return "B " + std::to_string(s.B) + " S " + std::to_string(s.S) + " H " + std::to_string(s.H) +
         (s.kv_heads() != s.H ? " Hkv " + std::to_string(s.kv_heads()) : "") + " Dqk " +
         std::to_string(s.Dqk) + " Dv " + std::to_string(s.Dv) + " " + dtype_name(s.dt) +
         (s.segments.empty() ? "" : " segments") + (s.qk_std != 1.0f ? " q,k std " + number(s.qk_std) : "") +
         (s.seed_dout ? "" : " forward");
}

// Host inputs and the CPU forward, which the backward of every backend starts from (so it is checked alone).
struct AttentionHost {
  Tensor q, k, v, dout, seg, out, lse;
};
AttentionHost attention_host(const AttentionSpec& s) {
  const Shape qs{s.B, s.S, s.H, s.Dqk}, ks{s.B, s.S, s.kv_heads(), s.Dqk}, vs{s.B, s.S, s.kv_heads(), s.Dv};
  const Shape os{s.B, s.S, s.H, s.Dv};
  AttentionHost h{random_tensor(qs, s.dt, s.seed_q, s.qk_std), random_tensor(ks, s.dt, s.seed_k, s.qk_std),
                  random_tensor(vs, s.dt, s.seed_v), s.seed_dout ? random_tensor(os, s.dt, s.seed_dout) : Tensor(),
                  Tensor(), Tensor::host(os, s.dt), Tensor::host({s.B, s.H, s.S}, DType::f32)};
  if (!s.segments.empty()) {
    h.seg = Tensor::host({s.B, s.S}, DType::i32);
    std::copy(s.segments.begin(), s.segments.end(), h.seg.data<std::int32_t>());
  }
  kernels::attention_forward(Context::cpu(), h.q, h.k, h.v, s.scale, h.seg, h.out, h.lse);
  return h;
}

// Tolerances as a fraction of the reference's largest magnitude (out_tol, grad_tol); lse is f32 on both sides
// from identical inputs: 1e-4 of (1 + |lse|). With one key per row (S = 1) softmax has nothing to trade off:
// dq and dk are exactly 0 and both sides leave rounding residue of dS = P (dP - D) of order eps |dP|, which dv
// (= P^T dO) carries the scale of. The backward gives the same bits run to run.
std::vector<Output> attention_outputs(const AttentionSpec& s, const Tensor& out, const Tensor& lse, const Tensor& dq,
                                      const Tensor& dk, const Tensor& dv) {
  const Tensor ho = to_host(out), hl = to_host(lse);
  std::vector<Output> outs{{"out", ho, within(s.out_tol * max_abs(ho))}, {"lse", hl, within(1e-4 * (1 + max_abs(hl)))}};
  if (!s.seed_dout) return outs;
  const Tensor hq = to_host(dq), hk = to_host(dk), hv = to_host(dv);
  const double qk_scale = std::max({max_abs(hq), max_abs(hk), max_abs(hv)});
  outs.push_back({"dq", hq, repeatable(within(s.grad_tol * (s.S == 1 ? qk_scale : max_abs(hq))))});
  outs.push_back({"dk", hk, repeatable(within(s.grad_tol * (s.S == 1 ? qk_scale : max_abs(hk))))});
  outs.push_back({"dv", hv, repeatable(within(s.grad_tol * max_abs(hv)))});
  return outs;
}

OpCase attention_case(const AttentionSpec& s) {
  OpCase c{"attention", attention_config(s)};
  c.bind = [=](const Context& ctx) {
    const AttentionHost h = attention_host(s);
    const Tensor q = ctx.to_here(h.q), k = ctx.to_here(h.k), v = ctx.to_here(h.v);
    const Tensor seg = h.seg.defined() ? ctx.to_here(h.seg) : Tensor();
    const Tensor out = ctx.empty(h.out.shape(), s.dt), lse = ctx.empty(h.lse.shape(), DType::f32);
    const bool backward = s.seed_dout != 0;
    const Tensor dout = backward ? ctx.to_here(h.dout) : Tensor(), saved_out = backward ? ctx.to_here(h.out) : Tensor();
    const Tensor saved_lse = backward ? ctx.to_here(h.lse) : Tensor();
    const Tensor dq = backward ? ctx.empty(h.q.shape(), s.dt) : Tensor(),
                 dk = backward ? ctx.empty(h.k.shape(), s.dt) : Tensor();
    const Tensor dv = backward ? ctx.empty(h.v.shape(), s.dt) : Tensor();
    // Causal (query, key) pairs; the forward multiplies over Dqk and Dv, the backward recomputes q.k and adds dP,
    // dV, dQ and dK.
    const double pairs = static_cast<double>(s.B * s.H) * s.S * (s.S + 1) / 2;
    const double flops = 2 * pairs * (s.Dqk + s.Dv) + (backward ? 2 * pairs * (3 * s.Dqk + 2 * s.Dv) : 0.0);
    return Run{[=] {
                 kernels::attention_forward(ctx, q, k, v, s.scale, seg, out, lse);
                 if (backward)
                   kernels::attention_backward(ctx, q, k, v, saved_out, dout, saved_lse, seg, s.scale, dq, dk, dv);
               },
               [=] { return attention_outputs(s, out, lse, dq, dk, dv); },
               bytes_of({q, k, v, out, lse}) * (backward ? 2.5 : 1.0), flops};
  };
  if (s.grad)  // the loss is an f32 forward summed in double: with eps 1e-3 the numeric gradient carries ~1e-4 noise
    c.grad = [=] {
      const AttentionHost h = attention_host(s);
      const Tensor dq = Tensor::host(h.q.shape(), DType::f32), dk = Tensor::host(h.k.shape(), DType::f32);
      const Tensor dv = Tensor::host(h.v.shape(), DType::f32);
      const Context cpu = Context::cpu();
      kernels::attention_backward(cpu, h.q, h.k, h.v, h.out, h.dout, h.lse, h.seg, s.scale, dq, dk, dv);
      return GradCheck{[=] {
                         kernels::attention_forward(cpu, h.q, h.k, h.v, s.scale, h.seg, h.out, h.lse);
                         return dot(h.dout, h.out);
                       },
                       {{"dq", h.q, dq, 1e-3, 1e-2}, {"dk", h.k, dk, 1e-3, 1e-2}, {"dv", h.v, dv, 1e-3, 1e-2}}};
    };
  return c;
}

// Both sides see the same (bf16-rounded) inputs and compute in f32.
// - f32: only summation order and exp2f vs exp differ, ~1e-6 relative; 2e-5 (outputs) and 2e-4 (gradients, sums of
//   up to S terms with cancellation in dS) leave room.
// - bf16: each side rounds its outputs to bf16 (2^-9 relative each), and the GPU rounds P and dS to bf16 before the
//   P V, P^T dO, dS K and dS^T Q products (2^-9 per term). A numpy model of exactly these roundings on these shapes
//   gives at most 5.3e-3 (out) and 7.8e-3 (gradients, rows summing many rounded terms with cancellation); the
//   bounds 1.5e-2 and 3e-2 leave about 3x for accumulation order and exp2f.
double out_tol(DType dt) { return dt == DType::f32 ? 2e-5 : 1.5e-2; }
double grad_tol(DType dt) { return dt == DType::f32 ? 2e-4 : 3e-2; }

// Segment ids reused along the row (not just increasing), so masking must compare ids.
std::vector<std::int32_t> reused_segments(std::int64_t B, std::int64_t S) {
  std::vector<std::int32_t> seg;
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t s = 0; s < S; ++s) seg.push_back(static_cast<std::int32_t>(((s + 13 * b) / 29) % 3));
  return seg;
}
// Runs of `run` tokens, offset by 3 per sequence.
std::vector<std::int32_t> run_segments(std::int64_t B, std::int64_t S, std::int64_t run) {
  std::vector<std::int32_t> seg;
  for (std::int64_t i = 0; i < B * S; ++i) seg.push_back(static_cast<std::int32_t>((i % S + 3 * (i / S)) / run));
  return seg;
}

void add_attention_parity_cases(std::vector<OpCase>& out) {
  struct Dims {
    std::int64_t B, S, H, Dqk, Dv;
  };
  // Every tensor-core pair at sequence lengths that exercise one partial tile (1, 17), whole tiles (128) and
  // several tiles with a partial last one (300); (80, 48) and (40, 24) run the CUDA-core path in bf16 too; and a
  // long pipeline of K/V tiles.
  std::vector<Dims> dims;
  const std::pair<std::int64_t, std::int64_t> heads[] = {{48, 32},   {64, 64}, {96, 64}, {128, 128},
                                                         {192, 128}, {80, 48}, {40, 24}};
  for (auto [dqk, dv] : heads)
    for (auto [b, s, h] :
         {std::tuple<std::int64_t, std::int64_t, std::int64_t>{2, 1, 1}, {2, 17, 3}, {1, 128, 2}, {2, 300, 4}})
      dims.push_back({b, s, h, dqk, dv});
  dims.push_back({1, 1031, 2, 192, 128});
  for (const Dims& d : dims)
    for (DType dt : {DType::bf16, DType::f32})
      for (bool with_seg : {false, true})
        out.push_back(attention_case({.B = d.B, .S = d.S, .H = d.H, .Dqk = d.Dqk, .Dv = d.Dv, .dt = dt,
                                      .segments = with_seg ? reused_segments(d.B, d.S) : std::vector<std::int32_t>{},
                                      .scale = 1.0f / std::sqrt(static_cast<float>(d.Dqk)), .qk_std = 1.0f,
                                      .seed_q = 1, .seed_k = 2, .seed_v = 3, .seed_dout = 4,
                                      .out_tol = out_tol(dt), .grad_tol = grad_tol(dt)}));
  // Large scores (|q.k| scale in the hundreds) must not overflow: the online softmax rescales as it goes. Nearly
  // one-hot rows: P is exact to bf16 rounding, so bf16 outputs agree as for ordinary scores. In f32 the scores reach
  // ~600, where rounding the exponent's argument alone is 600 x 2^-24 = 3.6e-5 relative per P (measured on the
  // H100: 3.8e-5 of max |out|); 1.5e-4 leaves 4x.
  for (DType dt : {DType::bf16, DType::f32})
    out.push_back(attention_case({.B = 1, .S = 200, .H = 2, .Dqk = 128, .Dv = 128, .dt = dt, .segments = {},
                                  .scale = 0.125f, .qk_std = 20.0f, .seed_q = 5, .seed_k = 6, .seed_v = 7,
                                  .seed_dout = 0, .out_tol = dt == DType::f32 ? 1.5e-4 : out_tol(dt),
                                  .grad_tol = grad_tol(dt)}));
  // Grouped-query attention: Llama/Qwen head dims (64, 128) on the tensor-core path, an odd pair on the CUDA-core
  // path, groups of 2, 4 and all heads on one K/V head (multi-query), partial and whole tiles. On CUDA the dk, dv
  // of a K/V head add G rounded per-head gradients: the bf16 bound above still holds (measured by the same model).
  struct GqaDims {
    std::int64_t B, S, H, Hkv;
  };
  for (auto [dqk, dv] : {std::pair<std::int64_t, std::int64_t>{64, 64}, {128, 128}, {40, 24}})
    for (const GqaDims g : {GqaDims{2, 17, 4, 2}, {1, 130, 8, 2}, {2, 33, 6, 1}})
      for (DType dt : {DType::bf16, DType::f32})
        out.push_back(attention_case({.B = g.B, .S = g.S, .H = g.H, .Dqk = dqk, .Dv = dv, .dt = dt,
                                      .segments = g.Hkv == 1 ? reused_segments(g.B, g.S) : std::vector<std::int32_t>{},
                                      .scale = 1.0f / std::sqrt(static_cast<float>(dqk)), .qk_std = 1.0f, .seed_q = 11,
                                      .seed_k = 12, .seed_v = 13, .seed_dout = 14, .out_tol = out_tol(dt),
                                      .grad_tol = grad_tol(dt), .Hkv = g.Hkv}));
  // Finite differences of q, k and v, with and without segments; multi-head, two groups of 2, one group of 3.
  for (const std::int64_t hkv : {0, 2, 1})
    for (bool with_seg : {false, true})
      out.push_back(attention_case({.B = 2, .S = 9, .H = hkv == 1 ? 3 : hkv == 2 ? 4 : 2, .Dqk = 12, .Dv = 8,
                                    .dt = DType::f32,
                                    .segments = with_seg ? run_segments(2, 9, 4) : std::vector<std::int32_t>{},
                                    .scale = 0.4f, .qk_std = 1.0f, .seed_q = 40, .seed_k = 41, .seed_v = 42,
                                    .seed_dout = 45, .out_tol = out_tol(DType::f32), .grad_tol = grad_tol(DType::f32),
                                    .grad = true, .Hkv = hkv}));
}

// ---------------------------------------------------------------- copy_columns

// Copies move bits; group sums add in the same order in f32 on both backends: bit-exact.
OpCase copy_columns_case(const Shape& src_shape, const Shape& dst_shape, std::int64_t src_col, std::int64_t dst_col,
                         std::int64_t width, DType dt, std::uint32_t seed) {
  OpCase c{"copy_columns", describe(dt, src_shape) + " col " + std::to_string(src_col) + " -> " + dst_shape.str() +
                               " col " + std::to_string(dst_col) + " width " + std::to_string(width)};
  c.bind = [=](const Context& ctx) {
    const Tensor src = ctx.to_here(random_tensor(src_shape, dt, seed)),
                 dst = ctx.to_here(random_tensor(dst_shape, dt, seed + 1));
    return Run{[=] { kernels::copy_columns(ctx, src, src_col, dst, dst_col, width); },
               [=] { return std::vector{output("dst", dst, bit_exact())}; },
               static_cast<double>(src.nbytes()) * width / src_shape[-1] +
                   static_cast<double>(dst.nbytes()) * width / dst_shape[-1]};
  };
  return c;
}

void add_copy_columns_cases(std::vector<OpCase>& out) {
  struct Layout {
    Shape src, dst;
    std::int64_t src_col, dst_col, width;
  };
  // Bench-like MLA shapes: kv [T, H, 128 + 128] split into k_nope and v; k_pe [T, 64] broadcast into
  // k [T, H, 192]; dk's rope slice summed over heads; and an odd one.
  const Layout layouts[] = {{{1000, 16, 256}, {1000, 16, 192}, 0, 0, 128},
                            {{1000, 16, 256}, {1000, 16, 128}, 128, 0, 128},
                            {{1000, 64}, {1000, 16, 192}, 0, 128, 64},
                            {{1000, 16, 192}, {1000, 64}, 128, 0, 64},
                            {{37, 5, 13}, {37, 1, 9}, 3, 2, 7}};
  for (DType dt : {DType::f32, DType::bf16}) {
    std::uint32_t seed = 1;
    for (const Layout& l : layouts) {
      out.push_back(copy_columns_case(l.src, l.dst, l.src_col, l.dst_col, l.width, dt, seed));
      seed += 2;
    }
  }
}
}  // namespace

void add_attention_cases(std::vector<OpCase>& out) {
  add_attention_parity_cases(out);
  add_copy_columns_cases(out);
}

}  // namespace r1::test
