// CUDA attention vs the CPU reference, forward and backward, bf16 (tensor-core kernels for the head-dim
// pairs that have them, the CUDA-core path for others) and f32. Labelled `gpu`: fails (never skips)
// without a CUDA device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/attention.hpp"
#include "kernels/test_util.hpp"

using namespace r1;
using kernels::Context;

namespace {
double max_abs(const Tensor& t) { return test::max_error(t, Tensor::host_zeros(t.shape(), t.dtype())); }

struct Case {
  std::int64_t B, S, H, Dqk, Dv;
};
// Every tensor-core pair at sequence lengths that exercise one partial tile (1, 17), whole tiles (128) and
// several tiles with a partial last one (300); (80, 48) and (40, 24) run the CUDA-core path in bf16 too.
std::vector<Case> cases() {
  std::vector<Case> out;
  const std::pair<std::int64_t, std::int64_t> dims[] = {{48, 32}, {64, 64}, {96, 64}, {128, 128}, {192, 128}, {80, 48}, {40, 24}};
  for (auto [dqk, dv] : dims) {
    out.push_back({2, 1, 1, dqk, dv});
    out.push_back({2, 17, 3, dqk, dv});
    out.push_back({1, 128, 2, dqk, dv});
    out.push_back({2, 300, 4, dqk, dv});
  }
  out.push_back({1, 1031, 2, 192, 128});  // a long pipeline of K/V tiles
  return out;
}

// Segment ids that are reused along the row (not just increasing), so masking must compare ids.
Tensor segments(std::int64_t B, std::int64_t S) {
  Tensor seg = Tensor::host({B, S}, DType::i32);
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t s = 0; s < S; ++s) seg.data<std::int32_t>()[b * S + s] = static_cast<std::int32_t>(((s + 13 * b) / 29) % 3);
  return seg;
}

std::string describe(const Case& c, DType dt, bool seg) {
  return "B " + std::to_string(c.B) + " S " + std::to_string(c.S) + " H " + std::to_string(c.H) + " Dqk " +
         std::to_string(c.Dqk) + " Dv " + std::to_string(c.Dv) + " " + dtype_name(dt) + (seg ? " segments" : "");
}

// Tolerances, as a fraction of the reference's largest magnitude. Both sides see the same (bf16-rounded)
// inputs and compute in f32.
// - f32: only summation order and exp2f vs exp differ: ~1e-6 relative; 2e-5 (outputs) and 2e-4 (gradients,
//   sums of up to S terms with cancellation in dS) leave room.
// - bf16: each side rounds its outputs to bf16 (2^-9 relative each), and the GPU rounds P and dS to bf16 before
//   the P V, P^T dO, dS K and dS^T Q products (2^-9 per term). A numpy model of exactly these roundings on
//   these shapes gives at most 5.3e-3 (out) and 7.8e-3 (gradients, rows summing many rounded terms with
//   cancellation); the bounds 1.5e-2 and 3e-2 leave about 3x for accumulation order and exp2f.
// - lse: f32 on both sides from identical inputs: 1e-4 of (1 + |lse|) either way.
double out_tol(DType dt) { return dt == DType::f32 ? 2e-5 : 1.5e-2; }
double grad_tol(DType dt) { return dt == DType::f32 ? 2e-4 : 3e-2; }
}  // namespace

TEST(AttentionParity, ForwardAndBackwardMatchCpu) {
  const Context cpu = Context::cpu(), dev = test::gpu_context();
  for (const Case& c : cases())
    for (DType dt : {DType::bf16, DType::f32})
      for (bool with_seg : {false, true}) {
        const std::string what = describe(c, dt, with_seg);
        const Shape qs{c.B, c.S, c.H, c.Dqk}, vs{c.B, c.S, c.H, c.Dv}, ls{c.B, c.H, c.S};
        const Tensor q = test::random_tensor(qs, dt, 1), k = test::random_tensor(qs, dt, 2);
        const Tensor v = test::random_tensor(vs, dt, 3), dout = test::random_tensor(vs, dt, 4);
        const Tensor seg = with_seg ? segments(c.B, c.S) : Tensor();
        const Tensor dseg = with_seg ? dev.to_here(seg) : Tensor();
        const float scale = 1.0f / std::sqrt(static_cast<float>(c.Dqk));
        const Tensor gq = dev.to_here(q), gk = dev.to_here(k), gv = dev.to_here(v);

        Tensor out = Tensor::host(vs, dt), lse = Tensor::host(ls, DType::f32);
        kernels::attention_forward(cpu, q, k, v, scale, seg, out, lse);
        Tensor gout = dev.empty(vs, dt), glse = dev.empty(ls, DType::f32);
        kernels::attention_forward(dev, gq, gk, gv, scale, dseg, gout, glse);
        const double lse_scale = 1 + max_abs(lse);
        EXPECT_LE(test::max_error(test::to_host(gout), out), out_tol(dt) * max_abs(out)) << what << ": out";
        EXPECT_LE(test::max_error(test::to_host(glse), lse), 1e-4 * lse_scale) << what << ": lse";

        // Backward from the same out and lse on both sides, so it is checked on its own.
        Tensor dq = Tensor::host(qs, dt), dk = Tensor::host(qs, dt), dv = Tensor::host(vs, dt);
        kernels::attention_backward(cpu, q, k, v, out, dout, lse, seg, scale, dq, dk, dv);
        const Tensor gdo = dev.to_here(dout), gout_c = dev.to_here(out), glse_c = dev.to_here(lse);
        Tensor gdq = dev.empty(qs, dt), gdk = dev.empty(qs, dt), gdv = dev.empty(vs, dt);
        kernels::attention_backward(dev, gq, gk, gv, gout_c, gdo, glse_c, dseg, scale, gdq, gdk, gdv);
        const Tensor hdq = test::to_host(gdq), hdk = test::to_host(gdk), hdv = test::to_host(gdv);
        // With one key per row (S = 1) softmax has nothing to trade off: dq and dk are exactly 0 and both sides
        // leave rounding residue of dS = P (dP - D) of order eps |dP|. dv (= P^T dO) carries that scale.
        const double qk_scale = std::max({max_abs(dq), max_abs(dk), max_abs(dv)});
        EXPECT_LE(test::max_error(hdq, dq), grad_tol(dt) * (c.S == 1 ? qk_scale : max_abs(dq))) << what << ": dq";
        EXPECT_LE(test::max_error(hdk, dk), grad_tol(dt) * (c.S == 1 ? qk_scale : max_abs(dk))) << what << ": dk";
        EXPECT_LE(test::max_error(hdv, dv), grad_tol(dt) * max_abs(dv)) << what << ": dv";

        // Deterministic: a second backward gives the same bits.
        kernels::attention_backward(dev, gq, gk, gv, gout_c, gdo, glse_c, dseg, scale, gdq, gdk, gdv);
        EXPECT_EQ(std::memcmp(test::to_host(gdq).raw(), hdq.raw(), hdq.nbytes()), 0) << what << ": dq run to run";
        EXPECT_EQ(std::memcmp(test::to_host(gdk).raw(), hdk.raw(), hdk.nbytes()), 0) << what << ": dk run to run";
        EXPECT_EQ(std::memcmp(test::to_host(gdv).raw(), hdv.raw(), hdv.nbytes()), 0) << what << ": dv run to run";
      }
}

// Large scores (|q.k| scale in the hundreds) must not overflow: the online softmax rescales as it goes.
TEST(AttentionParity, LargeScoresStayFinite) {
  const Context cpu = Context::cpu(), dev = test::gpu_context();
  const Shape qs{1, 200, 2, 128}, ls{1, 2, 200};
  for (DType dt : {DType::bf16, DType::f32}) {
    const Tensor q = test::random_tensor(qs, dt, 5, 20.0f), k = test::random_tensor(qs, dt, 6, 20.0f);
    const Tensor v = test::random_tensor(qs, dt, 7);
    Tensor out = Tensor::host(qs, dt), lse = Tensor::host(ls, DType::f32);
    kernels::attention_forward(cpu, q, k, v, 0.125f, Tensor(), out, lse);
    Tensor gout = dev.empty(qs, dt), glse = dev.empty(ls, DType::f32);
    kernels::attention_forward(dev, dev.to_here(q), dev.to_here(k), dev.to_here(v), 0.125f, Tensor(), gout, glse);
    const Tensor hout = test::to_host(gout);
    for (std::int64_t i = 0; i < hout.numel(); ++i) ASSERT_TRUE(std::isfinite(test::value(hout, i))) << dtype_name(dt);
    // Nearly one-hot rows: P is exact to bf16 rounding, so bf16 outputs agree as for ordinary scores. In f32
    // the scores reach ~600, where rounding the exponent's argument alone is 600 x 2^-24 = 3.6e-5 relative
    // per P (measured on the H100: 3.8e-5 of max |out|); 1.5e-4 leaves 4x.
    const double tol = dt == DType::f32 ? 1.5e-4 : out_tol(dt);
    EXPECT_LE(test::max_error(hout, out), tol * max_abs(out)) << dtype_name(dt);
    EXPECT_LE(test::max_error(test::to_host(glse), lse), 1e-4 * (1 + max_abs(lse))) << dtype_name(dt);
  }
}
