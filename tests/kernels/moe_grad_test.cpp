// Finite-difference checks of the MoE routing backwards (CPU reference): router gates and balance loss
// w.r.t. the router logits, unpermute w.r.t. y_perm and gates, permute w.r.t. x, grouped GEMM dgrad/wgrad.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <vector>

#include "kernels/grouped_gemm.hpp"
#include "kernels/gradcheck.hpp"
#include "kernels/moe_balance.hpp"
#include "kernels/moe_permute.hpp"
#include "kernels/moe_router.hpp"
#include "kernels/test_util.hpp"

using namespace r1;
using kernels::Context;
using kernels::RouterParams;
using kernels::ScoreFunc;

namespace {
const Context kCpu = Context::cpu();

double dot(const Tensor& w, const Tensor& y) {
  double s = 0;
  for (std::int64_t i = 0; i < y.numel(); ++i) s += test::value(w, i) * test::value(y, i);
  return s;
}

// Logits 0.25 apart within each token (a token-dependent shuffle of a ladder): every selection margin is
// far wider than the finite-difference step, so the selection stays fixed while the check perturbs.
Tensor ladder_logits(std::int64_t t, std::int64_t e) {
  Tensor x = Tensor::host({t, e}, DType::f32);
  for (std::int64_t i = 0; i < t; ++i) {
    std::vector<std::int64_t> order(e);
    std::iota(order.begin(), order.end(), 0);
    std::rotate(order.begin(), order.begin() + (i * 5) % e, order.end());
    if (i % 2) std::reverse(order.begin(), order.end());
    for (std::int64_t c = 0; c < e; ++c) x.data<float>()[i * e + c] = 0.25f * static_cast<float>(order[(c * 3) % e]) - 1.5f;
  }
  return x;
}

struct RouterCase {
  const char* name;
  RouterParams p;
};
}  // namespace

TEST(MoeRouterGrad, GatesBackwardMatchesFiniteDifferences) {
  const std::int64_t t = 6, e = 16;
  const RouterCase cases[] = {
      {"sigmoid normalised, groups 4/2, scale 2.5",
       {.score_func = ScoreFunc::sigmoid, .top_k = 3, .n_groups = 4, .topk_groups = 2, .route_scale = 2.5f}},
      {"softmax raw (V2-Lite)", {.score_func = ScoreFunc::softmax, .top_k = 4, .normalize = false}},
      {"softmax normalised, groups 8/3, scale 16",
       {.score_func = ScoreFunc::softmax, .top_k = 3, .n_groups = 8, .topk_groups = 3, .route_scale = 16.0f}},
      {"sigmoid raw", {.score_func = ScoreFunc::sigmoid, .top_k = 2, .normalize = false}},
  };
  for (const auto& cs : cases) {
    const Tensor logits = ladder_logits(t, e);
    const Tensor w = test::random_tensor({t, cs.p.top_k}, DType::f32, 7);
    Tensor bias = Tensor::host({e}, DType::f32);
    for (std::int64_t i = 0; i < e; ++i) bias.data<float>()[i] = 0.01f * static_cast<float>(i % 3);
    Tensor s = Tensor::host({t, e}, DType::f32), idx = Tensor::host({t, cs.p.top_k}, DType::i32);
    Tensor g = Tensor::host({t, cs.p.top_k}, DType::f32);
    kernels::moe_router_forward(kCpu, logits, bias, cs.p, s, idx, g);
    const Tensor idx0 = kCpu.to_here(idx);
    Tensor dlogits = Tensor::host({t, e}, DType::f32);
    kernels::moe_router_backward(kCpu, w, s, idx, g, cs.p, dlogits);
    const auto loss = [&] {
      kernels::moe_router_forward(kCpu, logits, bias, cs.p, s, idx, g);
      for (std::int64_t i = 0; i < idx.numel(); ++i)
        EXPECT_EQ(idx.data<std::int32_t>()[i], idx0.data<std::int32_t>()[i]) << "selection moved under the step";
      return dot(w, g);
    };
    const auto r = test::gradcheck(loss, logits, dlogits, 1e-3);
    EXPECT_LT(r.relative(), 2e-3) << cs.name << ": error " << r.max_abs_error << " of " << r.max_abs_grad;
  }
}

TEST(MoeBalanceGrad, LossBackwardToTheLogitsMatchesFiniteDifferences) {
  const std::int64_t t = 12, e = 8, k = 2;
  for (ScoreFunc f : {ScoreFunc::sigmoid, ScoreFunc::softmax}) {
    const RouterParams p{.score_func = f, .top_k = k};
    const kernels::BalanceParams bp{.seq_len = 4, .alpha = 1.0f, .score_func = f};
    const Tensor logits = test::random_tensor({t, e}, DType::f32, 8);
    Tensor s = Tensor::host({t, e}, DType::f32), idx = Tensor::host({t, k}, DType::i32), g = Tensor::host({t, k}, DType::f32);
    kernels::moe_router_forward(kCpu, logits, Tensor(), p, s, idx, g);
    const Tensor idx0 = kCpu.to_here(idx);  // counts are piecewise constant: held at this selection
    Tensor dlogits = test::random_tensor({t, e}, DType::f32, 9);
    const Tensor before = kCpu.to_here(dlogits);
    kernels::moe_balance_backward(kCpu, 1.0f, s, idx0, bp, dlogits);
    for (std::int64_t i = 0; i < t * e; ++i) dlogits.data<float>()[i] -= before.data<float>()[i];  // accumulated +=
    Tensor l = Tensor::host({1}, DType::f32), counts = Tensor::host({e}, DType::i32);
    const auto loss = [&] {
      kernels::moe_router_forward(kCpu, logits, Tensor(), p, s, idx, g);
      kernels::moe_balance_forward(kCpu, s, idx0, bp, l, counts);
      return static_cast<double>(l.data<float>()[0]);
    };
    // The loss comes back in f32: its rounding (6e-8 relative) over a 2e-2 step bounds the error.
    const auto r = test::gradcheck(loss, logits, dlogits, 1e-2);
    EXPECT_LT(r.relative(), 5e-3) << kernels::score_func_name(f) << ": error " << r.max_abs_error << " of "
                                  << r.max_abs_grad;
  }
}

namespace {
struct Permuted {
  Tensor idx, row_of, off;
  std::vector<std::int64_t> host_off;
};
Permuted permuted(const Tensor& x, std::int64_t k, std::int64_t e, Tensor& xp) {
  const std::int64_t t = x.dim(0);
  Permuted p{Tensor::host({t, k}, DType::i32), Tensor::host({t, k}, DType::i32), Tensor::host({e + 1}, DType::i32), {}};
  for (std::int64_t i = 0; i < t * k; ++i) p.idx.data<std::int32_t>()[i] = static_cast<std::int32_t>((i * 5 + i / k) % e);
  p.host_off = kernels::moe_permute(kCpu, x, p.idx, xp, p.row_of, p.off);
  return p;
}
}  // namespace

TEST(MoePermuteGrad, UnpermuteBackwardMatchesFiniteDifferences) {
  const std::int64_t t = 9, k = 3, e = 4, d = 5;
  const Tensor x = test::random_tensor({t, d}, DType::f32, 10);
  Tensor xp = Tensor::host({t * k, d}, DType::f32);
  const Permuted p = permuted(x, k, e, xp);
  const Tensor yp = test::random_tensor({t * k, d}, DType::f32, 11);
  const Tensor gates = test::random_tensor({t, k}, DType::f32, 12), w = test::random_tensor({t, d}, DType::f32, 13);
  Tensor dyp = Tensor::host({t * k, d}, DType::f32), dg = Tensor::host({t, k}, DType::f32);
  kernels::moe_unpermute_backward(kCpu, w, yp, p.row_of, gates, dyp, dg);
  Tensor y = Tensor::host({t, d}, DType::f32);
  const auto loss = [&] {
    kernels::moe_unpermute(kCpu, yp, p.row_of, gates, y);
    return dot(w, y);
  };
  EXPECT_LT(test::gradcheck(loss, yp, dyp).relative(), 1e-3) << "w.r.t. y_perm";
  EXPECT_LT(test::gradcheck(loss, gates, dg).relative(), 1e-3) << "w.r.t. gates";
}

TEST(MoePermuteGrad, PermuteBackwardMatchesFiniteDifferences) {
  const std::int64_t t = 9, k = 2, e = 3, d = 4;
  const Tensor x = test::random_tensor({t, d}, DType::f32, 14), w = test::random_tensor({t * k, d}, DType::f32, 15);
  Tensor xp = Tensor::host({t * k, d}, DType::f32);
  const Permuted p = permuted(x, k, e, xp);
  Tensor dx = Tensor::host({t, d}, DType::f32);
  kernels::moe_permute_backward(kCpu, w, p.row_of, dx);
  const auto loss = [&] {
    kernels::moe_permute(kCpu, x, p.idx, xp, p.row_of, p.off);
    return dot(w, xp);
  };
  EXPECT_LT(test::gradcheck(loss, x, dx).relative(), 1e-3);
}

TEST(GroupedGemmGrad, DgradAndWgradMatchFiniteDifferences) {
  const std::vector<std::int64_t> off = {0, 4, 4, 7, 11};
  const std::int64_t m = 11, k = 5, n = 6, e = 4;
  const Tensor in = test::random_tensor({m, k}, DType::f32, 16), w = test::random_tensor({e, n, k}, DType::f32, 17);
  const Tensor g = test::random_tensor({m, n}, DType::f32, 18);
  Tensor din = Tensor::host({m, k}, DType::f32), dw = kCpu.zeros({e, n, k}, DType::f32);
  kernels::grouped_gemm(kCpu, g, w, din, off);
  kernels::grouped_gemm(kCpu, g, in, dw, off, {.trans_a = true, .beta = 1.0f});
  Tensor out = Tensor::host({m, n}, DType::f32);
  const auto loss = [&] {
    kernels::grouped_gemm(kCpu, in, w, out, off, {.trans_b = true});
    return dot(g, out);
  };
  EXPECT_LT(test::gradcheck(loss, in, din).relative(), 1e-3) << "dgrad";
  EXPECT_LT(test::gradcheck(loss, w, dw).relative(), 1e-3) << "wgrad";
}
