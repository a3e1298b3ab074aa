// CPU reference vs CUDA for the MoE routing ops. Labelled `gpu`: needs a CUDA device and fails (never skips)
// without one. Selections, indices, offsets and row moves must be bit-identical; f32 values agree within the
// tolerance stated beside each check.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "kernels/grouped_gemm.hpp"
#include "kernels/moe_balance.hpp"
#include "kernels/moe_decode.hpp"
#include "kernels/moe_permute.hpp"
#include "kernels/moe_router.hpp"
#include "kernels/test_util.hpp"

using namespace r1;
using kernels::Context;
using kernels::RouterParams;
using kernels::ScoreFunc;

namespace {
const Context kCpu = Context::cpu();

bool same_bits(const Tensor& device, const Tensor& host) {
  return std::memcmp(test::to_host(device).raw(), host.raw(), host.nbytes()) == 0;
}
double max_abs(const Tensor& t) { return test::max_error(t, Tensor::host_zeros(t.shape(), t.dtype())); }

// Router logits as a router GEMM makes them, optionally on a coarse grid (many exact ties).
Tensor router_logits(std::int64_t t, std::int64_t e, std::uint32_t stream, bool coarse) {
  Tensor x = test::random_tensor({t, e}, DType::f32, stream, 2.0f);
  if (coarse)
    for (std::int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = std::round(x.data<float>()[i] * 2.0f) / 2.0f;
  return x;
}

struct RouterCase {
  const char* name;
  std::int64_t t, e;
  RouterParams p;
  bool bias, coarse;
};
const RouterCase kRouterCases[] = {
    {"V2-Lite softmax raw", 4099, 64, {.score_func = ScoreFunc::softmax, .top_k = 6, .normalize = false}, false, false},
    {"V3 sigmoid groups 8/4", 3001, 256,
     {.score_func = ScoreFunc::sigmoid, .top_k = 8, .n_groups = 8, .topk_groups = 4, .route_scale = 2.5f}, true, false},
    {"236B softmax groups 8/3", 2048, 160,
     {.score_func = ScoreFunc::softmax, .top_k = 6, .n_groups = 8, .topk_groups = 3, .route_scale = 16.0f}, false, false},
    {"ties: coarse logits, sigmoid groups", 1000, 64,
     {.score_func = ScoreFunc::sigmoid, .top_k = 6, .n_groups = 4, .topk_groups = 2, .route_scale = 2.5f}, true, true},
    {"ties: coarse logits, softmax", 1000, 64, {.score_func = ScoreFunc::softmax, .top_k = 6}, false, true},
    // Decode shapes: a warp per token, so one token, and a block (4 tokens) plus one.
    {"decode: one token, V3 sigmoid groups 8/4", 1, 256,
     {.score_func = ScoreFunc::sigmoid, .top_k = 8, .n_groups = 8, .topk_groups = 4, .route_scale = 2.5f}, true, false},
    {"decode: five tokens, V2-Lite softmax", 5, 64, {.score_func = ScoreFunc::softmax, .top_k = 6, .normalize = false}, false, false},
    {"one expert per group, 64 groups keep 5", 7, 64,
     {.score_func = ScoreFunc::sigmoid, .top_k = 4, .n_groups = 64, .topk_groups = 5}, true, true},
};
}  // namespace

// The same per-token routine on both sides with deterministic exp and explicitly rounded steps: scores,
// selections and gates are the same bits. The backward is the same code too, but the GPU may fuse its
// multiply-adds: 1e-5 of the largest gradient.
TEST(MoeRouterParity, SelectionsAreBitIdenticalAndGradientsClose) {
  const Context dev = test::gpu_context();
  for (const auto& cs : kRouterCases) {
    const std::int64_t k = cs.p.top_k;
    const Tensor logits = router_logits(cs.t, cs.e, 1, cs.coarse);
    Tensor bias;
    if (cs.bias) bias = cs.coarse ? kCpu.zeros({cs.e}, DType::f32) : test::random_tensor({cs.e}, DType::f32, 2, 0.05f);
    Tensor hs = Tensor::host({cs.t, cs.e}, DType::f32), hi = Tensor::host({cs.t, k}, DType::i32);
    Tensor hg = Tensor::host({cs.t, k}, DType::f32);
    kernels::moe_router_forward(kCpu, logits, bias, cs.p, hs, hi, hg);
    Tensor ds = dev.empty({cs.t, cs.e}, DType::f32), di = dev.empty({cs.t, k}, DType::i32), dg = dev.empty({cs.t, k}, DType::f32);
    kernels::moe_router_forward(dev, dev.to_here(logits), bias.defined() ? dev.to_here(bias) : Tensor(), cs.p, ds, di, dg);
    EXPECT_TRUE(same_bits(di, hi)) << cs.name << ": expert_idx";
    EXPECT_TRUE(same_bits(ds, hs)) << cs.name << ": scores";
    EXPECT_TRUE(same_bits(dg, hg)) << cs.name << ": gates";

    const Tensor w = test::random_tensor({cs.t, k}, DType::f32, 3);
    Tensor hd = Tensor::host({cs.t, cs.e}, DType::f32), dd = dev.empty({cs.t, cs.e}, DType::f32);
    kernels::moe_router_backward(kCpu, w, hs, hi, hg, cs.p, hd);
    kernels::moe_router_backward(dev, dev.to_here(w), ds, di, dg, cs.p, dd);
    EXPECT_LE(test::max_error(test::to_host(dd), hd), 1e-5 * max_abs(hd)) << cs.name << ": dlogits";
  }
}

// Counts are integers (exact). Loss and P sums accumulate in double on both sides in different orders,
// rounded once to f32: 1e-6 relative. The backward is the shared per-token double code added onto f32:
// 1e-6 of the largest value.
TEST(MoeBalanceParity, CountsExactLossAndGradientClose) {
  const Context dev = test::gpu_context();
  for (ScoreFunc f : {ScoreFunc::sigmoid, ScoreFunc::softmax}) {
    const std::int64_t b = 2, l = 4096, e = 64, k = 6;
    const RouterParams p{.score_func = f, .top_k = k};
    const kernels::BalanceParams bp{.seq_len = l, .alpha = 1e-4f, .score_func = f};
    const Tensor logits = router_logits(b * l, e, 4, false);
    Tensor s = Tensor::host({b * l, e}, DType::f32), idx = Tensor::host({b * l, k}, DType::i32);
    Tensor g = Tensor::host({b * l, k}, DType::f32);
    kernels::moe_router_forward(kCpu, logits, Tensor(), p, s, idx, g);
    const Tensor dsc = dev.to_here(s), didx = dev.to_here(idx);

    Tensor hl = Tensor::host({1}, DType::f32), hc = Tensor::host({e}, DType::i32);
    Tensor dl = dev.empty({1}, DType::f32), dc = dev.empty({e}, DType::i32);
    kernels::moe_balance_forward(kCpu, s, idx, bp, hl, hc);
    kernels::moe_balance_forward(dev, dsc, didx, bp, dl, dc);
    EXPECT_TRUE(same_bits(dc, hc)) << kernels::score_func_name(f) << ": counts";
    EXPECT_NEAR(test::to_host(dl).data<float>()[0], hl.data<float>()[0], 1e-6 * hl.data<float>()[0]);

    const Tensor base = test::random_tensor({b * l, e}, DType::f32, 5, 1e-4f);
    Tensor hd = kCpu.to_here(base), dd = dev.to_here(base);
    kernels::moe_balance_backward(kCpu, 0.5f, s, idx, bp, hd);
    kernels::moe_balance_backward(dev, 0.5f, dsc, didx, bp, dd);
    EXPECT_LE(test::max_error(test::to_host(dd), hd), 1e-6 * max_abs(hd)) << kernels::score_func_name(f) << ": dlogits";

    Tensor hb = test::random_tensor({e}, DType::f32, 6, 0.1f), db = dev.to_here(hb);
    kernels::moe_bias_update(kCpu, hc, 1e-3f, hb);
    kernels::moe_bias_update(dev, dc, 1e-3f, db);
    EXPECT_TRUE(same_bits(db, hb)) << "bias update";
  }
}

namespace {
// Expert choices with a skew: expert e takes about twice the load of expert e + 1, a few get none.
Tensor skewed_idx(std::int64_t t, std::int64_t k, std::int64_t e) {
  Tensor idx = Tensor::host({t, k}, DType::i32);
  for (std::int64_t i = 0; i < t; ++i)
    for (std::int64_t j = 0; j < k; ++j) {
      const float u = random_uniform(RngKey{2024, 99}, static_cast<std::uint64_t>(i));
      idx.data<std::int32_t>()[i * k + j] = static_cast<std::int32_t>((static_cast<std::int64_t>(u * u * u * (e - 4)) + j * 7) % (e - 4));
    }
  return idx;
}
}  // namespace

// Routing map and row moves are bit-identical (the same stable order); the gate-weighted combine may use
// FMA on the GPU: 1e-6 of k max|y| for f32, one bf16 rounding (2^-7 of max|y|) for bf16. The unpermute
// backward's dy_perm is one multiply (bit-identical); dgates are dot products in different orders: 1e-5 of
// the largest sum_d |dy y_perm|.
TEST(MoePermuteParity, MapsAndRowsBitIdenticalCombinesClose) {
  const Context dev = test::gpu_context();
  struct Case {
    std::int64_t t, k, e, d;
    DType dt;
  };
  for (const Case cs : {Case{1031, 6, 64, 2048, DType::bf16}, Case{517, 8, 256, 33, DType::f32},
                        Case{300, 2, 8, 7, DType::bf16}, Case{0, 6, 64, 16, DType::f32}}) {
    const std::string name = std::to_string(cs.t) + "x" + std::to_string(cs.k) + " E " + std::to_string(cs.e) +
                             " D " + std::to_string(cs.d) + " " + dtype_name(cs.dt);
    const Tensor x = test::random_tensor({cs.t, cs.d}, cs.dt, 7);
    const Tensor idx = skewed_idx(cs.t, cs.k, cs.e);
    const std::int64_t n = cs.t * cs.k;
    Tensor hxp = Tensor::host({n, cs.d}, cs.dt), hrow = Tensor::host({cs.t, cs.k}, DType::i32);
    Tensor hoff = Tensor::host({cs.e + 1}, DType::i32);
    Tensor dxp = dev.empty({n, cs.d}, cs.dt), drow = dev.empty({cs.t, cs.k}, DType::i32), doff = dev.empty({cs.e + 1}, DType::i32);
    const auto ho = kernels::moe_permute(kCpu, x, idx, hxp, hrow, hoff);
    const auto go = kernels::moe_permute(dev, dev.to_here(x), dev.to_here(idx), dxp, drow, doff);
    EXPECT_EQ(go, ho) << name << ": host offsets";
    EXPECT_TRUE(same_bits(doff, hoff)) << name << ": expert_offsets";
    EXPECT_TRUE(same_bits(drow, hrow)) << name << ": row_of";
    EXPECT_TRUE(same_bits(dxp, hxp)) << name << ": x_perm";
    if (n == 0) continue;

    const Tensor yp = test::random_tensor({n, cs.d}, cs.dt, 8), gates = test::random_tensor({cs.t, cs.k}, DType::f32, 9);
    const Tensor dyp_in = dev.to_here(yp), dgates_in = dev.to_here(gates);
    Tensor hy = Tensor::host({cs.t, cs.d}, cs.dt), dy = dev.empty({cs.t, cs.d}, cs.dt);
    kernels::moe_unpermute(kCpu, yp, hrow, gates, hy);
    kernels::moe_unpermute(dev, dyp_in, drow, dgates_in, dy);
    const double tol = cs.dt == DType::f32 ? 1e-6 * cs.k * max_abs(hy) : 0.0079 * max_abs(hy);
    EXPECT_LE(test::max_error(test::to_host(dy), hy), tol) << name << ": unpermute";

    Tensor hdx = Tensor::host({cs.t, cs.d}, cs.dt), ddx = dev.empty({cs.t, cs.d}, cs.dt);
    kernels::moe_permute_backward(kCpu, yp, hrow, hdx);
    kernels::moe_permute_backward(dev, dyp_in, drow, ddx);
    EXPECT_LE(test::max_error(test::to_host(ddx), hdx), tol) << name << ": permute backward";

    const Tensor g = test::random_tensor({cs.t, cs.d}, cs.dt, 10);
    Tensor hdp = Tensor::host({n, cs.d}, cs.dt), hdg = Tensor::host({cs.t, cs.k}, DType::f32);
    Tensor ddp = dev.empty({n, cs.d}, cs.dt), ddg = dev.empty({cs.t, cs.k}, DType::f32);
    kernels::moe_unpermute_backward(kCpu, g, yp, hrow, gates, hdp, hdg);
    kernels::moe_unpermute_backward(dev, dev.to_here(g), dyp_in, drow, dgates_in, ddp, ddg);
    EXPECT_TRUE(same_bits(ddp, hdp)) << name << ": dy_perm";
    double scale = 0;
    for (std::int64_t i = 0; i < cs.t; ++i)
      for (std::int64_t j = 0; j < cs.k; ++j) {
        double s = 0;
        const std::int64_t r = hrow.data<std::int32_t>()[i * cs.k + j];
        for (std::int64_t c = 0; c < cs.d; ++c) s += std::fabs(test::value(g, i * cs.d + c) * test::value(yp, r * cs.d + c));
        scale = std::max(scale, s);
      }
    EXPECT_LE(test::max_error(test::to_host(ddg), hdg), 1e-5 * scale) << name << ": dgates";
  }
}

TEST(MoePermuteParity, BadExpertIndexIsAUserError) {
  const Context dev = test::gpu_context();
  Tensor idx = Tensor::host({4, 2}, DType::i32);
  for (int i = 0; i < 8; ++i) idx.data<std::int32_t>()[i] = i == 5 ? 9 : i % 4;
  Tensor xp = dev.empty({8, 4}, DType::f32), row = dev.empty({4, 2}, DType::i32), off = dev.empty({5}, DType::i32);
  EXPECT_THROW(kernels::moe_permute(dev, dev.zeros({4, 4}, DType::f32), dev.to_here(idx), xp, row, off), Error);
}

// Each group is one kernels::gemm call on both sides: the GEMM tolerance, 1e-5 |A| |B| K, per operand.
TEST(GroupedGemmParity, ForwardDgradWgradMatchCpu) {
  const Context dev = test::gpu_context();
  const std::int64_t e = 8, k = 256, n = 192;
  for (const auto& off : {std::vector<std::int64_t>{0, 100, 200, 300, 400, 500, 600, 700, 800},
                          std::vector<std::int64_t>{0, 500, 500, 650, 700, 700, 780, 799, 800}}) {
    const std::int64_t m = off.back();
    for (DType dt : {DType::f32, DType::bf16}) {
      const Tensor in = test::random_tensor({m, k}, dt, 11), w = test::random_tensor({e, n, k}, dt, 12);
      const Tensor dout = test::random_tensor({m, n}, dt, 13), dw0 = test::random_tensor({e, n, k}, DType::f32, 14);
      Tensor hout = Tensor::host({m, n}, DType::f32), hdin = Tensor::host({m, k}, DType::f32), hdw = kCpu.to_here(dw0);
      Tensor dout_ = dev.empty({m, n}, DType::f32), ddin = dev.empty({m, k}, DType::f32), ddw = dev.to_here(dw0);
      const Tensor din_ = dev.to_here(in), dw_ = dev.to_here(w), dg_ = dev.to_here(dout);
      kernels::grouped_gemm(kCpu, in, w, hout, off, {.trans_b = true});
      kernels::grouped_gemm(dev, din_, dw_, dout_, off, {.trans_b = true});
      kernels::grouped_gemm(kCpu, dout, w, hdin, off);
      kernels::grouped_gemm(dev, dg_, dw_, ddin, off);
      kernels::grouped_gemm(kCpu, dout, in, hdw, off, {.trans_a = true, .beta = 1.0f});
      kernels::grouped_gemm(dev, dg_, din_, ddw, off, {.trans_a = true, .beta = 1.0f});
      const double a = max_abs(in), b = max_abs(w), g = max_abs(dout);
      EXPECT_LE(test::max_error(test::to_host(dout_), hout), 1e-5 * a * b * k) << dtype_name(dt) << " forward";
      EXPECT_LE(test::max_error(test::to_host(ddin), hdin), 1e-5 * g * b * n) << dtype_name(dt) << " dgrad";
      EXPECT_LE(test::max_error(test::to_host(ddw), hdw), 1e-5 * g * a * m) << dtype_name(dt) << " wgrad";
    }
  }
}

// Decode-sized groups (64 experts, 0-40 rows each, a third of them empty) in the operands' dtype take the
// single grouped launch; both sides round C to the dtype, so bf16 adds one rounding of C (2^-8 relative).
TEST(GroupedGemmParity, SmallGroupsInOneLaunchMatchCpu) {
  const Context dev = test::gpu_context();
  const std::int64_t e = 64, k = 320, n = 176;
  std::vector<std::int64_t> off{0};
  for (std::int64_t x = 0; x < e; ++x) off.push_back(off.back() + (x % 3 == 1 ? 0 : (x * 7) % 41));
  const std::int64_t m = off.back();
  for (DType dt : {DType::bf16, DType::f32})
    for (float beta : {0.0f, 1.0f}) {
      const std::string what = std::string(dtype_name(dt)) + " beta " + std::to_string(beta);
      const Tensor in = test::random_tensor({m, k}, dt, 21), w = test::random_tensor({e, n, k}, dt, 22);
      const Tensor dout = test::random_tensor({m, n}, dt, 23), c0 = test::random_tensor({m, n}, dt, 24);
      const Tensor d0 = test::random_tensor({m, k}, dt, 25);
      ASSERT_TRUE(kernels::one_launch(dev, dev.to_here(in), dev.to_here(c0), off, {.trans_b = true})) << what;
      Tensor hout = kCpu.to_here(c0), hdin = kCpu.to_here(d0);
      Tensor gout = dev.to_here(c0), gdin = dev.to_here(d0);
      kernels::grouped_gemm(kCpu, in, w, hout, off, {.trans_b = true, .beta = beta});
      kernels::grouped_gemm(dev, dev.to_here(in), dev.to_here(w), gout, off, {.trans_b = true, .beta = beta});
      kernels::grouped_gemm(kCpu, dout, w, hdin, off, {.beta = beta});
      kernels::grouped_gemm(dev, dev.to_here(dout), dev.to_here(w), gdin, off, {.beta = beta});
      const double a = max_abs(in), b = max_abs(w), g = max_abs(dout), round = dt == DType::bf16 ? 0x1p-8 : 0.0;
      EXPECT_LE(test::max_error(test::to_host(gout), hout), 1e-5 * a * b * k + round * max_abs(hout)) << what << " forward";
      EXPECT_LE(test::max_error(test::to_host(gdin), hdin), 1e-5 * g * b * n + round * max_abs(hdin)) << what << " dgrad";
    }
}

// The decode-batch experts on the GPU against the CPU reference: the packed path (widths multiples of 8)
// at V2-Lite-like shapes and the scalar path at odd widths; f32 to summation order, bf16 within a flipped
// rounding of an intermediate; the same bits run to run.
TEST(MoeDecodeParity, MatchesTheCpuReference) {
  const Context dev = test::gpu_context();
  struct Case {
    std::int64_t t, k, e, d, inter;
  };
  // Bench shapes at batch 1 (fewer experts); several output columns per down block (k = 2, 3); more slots
  // than a down block has warps (k = 10); a last down block only partly inside D (D = 101, k = 3).
  for (const Case cs : {Case{1, 6, 8, 2048, 1408}, Case{1, 6, 64, 512, 176}, Case{8, 2, 16, 256, 96},
                        Case{3, 3, 9, 100, 36}, Case{2, 10, 12, 64, 40}, Case{2, 3, 5, 101, 40}}) {
    Tensor idx = Tensor::host({cs.t, cs.k}, DType::i32);
    for (std::int64_t i = 0; i < cs.t * cs.k; ++i)
      idx.data<std::int32_t>()[i] = static_cast<std::int32_t>((i * 5 + i / cs.k) % cs.e);
    const Tensor gates = test::random_tensor({cs.t, cs.k}, DType::f32, 4);
    for (DType dt : {DType::f32, DType::bf16}) {
      const Tensor x = test::random_tensor({cs.t, cs.d}, dt, 1);
      const Tensor gate_up = test::random_tensor({cs.e, 2 * cs.inter, cs.d}, dt, 2, 0.05f);
      const Tensor down = test::random_tensor({cs.e, cs.d, cs.inter}, dt, 3, 0.05f);
      Tensor h = Tensor::host({cs.t * cs.k, cs.inter}, dt), out = Tensor::host({cs.t, cs.d}, dt);
      kernels::moe_decode_experts(kCpu, x, idx, gates, gate_up, down, h, out);
      const Tensor dh = dev.empty(h.shape(), dt), dout = dev.empty(out.shape(), dt);
      kernels::moe_decode_experts(dev, dev.to_here(x), dev.to_here(idx), dev.to_here(gates), dev.to_here(gate_up),
                                  dev.to_here(down), dh, dout);
      const double tol = dt == DType::f32 ? 1e-5 : 2e-2;
      EXPECT_LE(test::max_error(test::to_host(dh), h), tol * max_abs(h)) << cs.d << " " << dtype_name(dt) << ": h";
      EXPECT_LE(test::max_error(test::to_host(dout), out), tol * max_abs(out)) << cs.d << " " << dtype_name(dt);
      // A second run gives the same bits (fixed reduction orders, no atomics).
      const Tensor dh2 = dev.empty(h.shape(), dt), dout2 = dev.empty(out.shape(), dt);
      kernels::moe_decode_experts(dev, dev.to_here(x), dev.to_here(idx), dev.to_here(gates), dev.to_here(gate_up),
                                  dev.to_here(down), dh2, dout2);
      EXPECT_TRUE(same_bits(dh2, test::to_host(dh)) && same_bits(dout2, test::to_host(dout)))
          << cs.d << " " << dtype_name(dt);
    }
  }
}
