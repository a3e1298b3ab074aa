// CPU reference of the MoE routing ops against hand-computed cases: router selection (groups, bias, ties,
// score functions, normalisation), balance loss, bias update, permutation, grouped GEMM.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/grouped_gemm.hpp"
#include "kernels/moe_balance.hpp"
#include "kernels/moe_decode.hpp"
#include "kernels/moe_permute.hpp"
#include "kernels/moe_router.hpp"
#include "kernels/moe_routing_math.hpp"
#include "kernels/swiglu.hpp"
#include "kernels/test_util.hpp"

using namespace r1;
using kernels::Context;
using kernels::RouterParams;
using kernels::ScoreFunc;

namespace {
const Context kCpu = Context::cpu();

Tensor f32(const Shape& s, const std::vector<float>& v) {
  Tensor t = Tensor::host(s, DType::f32);
  std::memcpy(t.raw(), v.data(), t.nbytes());
  return t;
}
Tensor i32(const Shape& s, const std::vector<std::int32_t>& v) {
  Tensor t = Tensor::host(s, DType::i32);
  std::memcpy(t.raw(), v.data(), t.nbytes());
  return t;
}
template <class T> std::vector<T> values(const Tensor& t) {
  const T* p = t.data<T>();
  return std::vector<T>(p, p + t.numel());
}

struct Routed {
  Tensor scores, idx, gates;
};
Routed route(const Tensor& logits, const Tensor& bias, const RouterParams& p) {
  const std::int64_t t = logits.dim(0);
  Routed r{Tensor::host(logits.shape(), DType::f32), Tensor::host({t, p.top_k}, DType::i32),
           Tensor::host({t, p.top_k}, DType::f32)};
  kernels::moe_router_forward(kCpu, logits, bias, p, r.scores, r.idx, r.gates);
  return r;
}
double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
}  // namespace

TEST(MoeRouter, DeterministicExpIsWithinTwoUlpOfLibm) {
  for (int i = -870000; i <= 880000; i += 7) {
    const float x = static_cast<float>(i) * 1e-4f;
    const double want = std::exp(static_cast<double>(x));
    ASSERT_LE(std::fabs(kernels::moe::exp_det(x) - want), 2.0 * 0x1p-23 * want) << "x = " << x;
  }
  EXPECT_EQ(kernels::moe::exp_det(0.0f), 1.0f);
  EXPECT_EQ(kernels::moe::exp_det(-200.0f), 0.0f);
  EXPECT_TRUE(std::isinf(kernels::moe::exp_det(100.0f)));
}

// Sigmoid scores s = [.881 .870 | .500 .525 | .731 .769 | .269 .119] in 4 groups of 2, keep 2 groups, top-2.
// Without bias the groups {0, 2} win and experts 0, 1 are chosen. The bias (-1 on expert 1, +0.5 on
// expert 4) makes groups {2, 1} win (sums 2.00 and 1.03 against 0.75), so experts 4 and 5 are chosen even
// though expert 0's biased score (.881) beats expert 5's (.769); the gates come from the unbiased scores.
TEST(MoeRouter, GroupLimitedSelectionFollowsTheBiasAndGatesIgnoreIt) {
  const std::vector<float> x = {2.0f, 1.9f, 0.0f, 0.1f, 1.0f, 1.2f, -1.0f, -2.0f};
  const Tensor logits = f32({1, 8}, x);
  const Tensor bias = f32({8}, {0, -1, 0, 0, 0.5f, 0, 0, 0});
  const RouterParams p{.score_func = ScoreFunc::sigmoid, .top_k = 2, .n_groups = 4, .topk_groups = 2};

  EXPECT_EQ(values<std::int32_t>(route(logits, Tensor(), p).idx), (std::vector<std::int32_t>{0, 1}));
  const Routed r = route(logits, bias, p);
  EXPECT_EQ(values<std::int32_t>(r.idx), (std::vector<std::int32_t>{4, 5}));
  const double s4 = sigmoid(1.0), s5 = sigmoid(1.2);
  EXPECT_NEAR(r.gates.data<float>()[0], s4 / (s4 + s5), 1e-6);
  EXPECT_NEAR(r.gates.data<float>()[1], s5 / (s4 + s5), 1e-6);
  for (int e = 0; e < 8; ++e) EXPECT_NEAR(r.scores.data<float>()[e], sigmoid(x[e]), 1e-7) << "unbiased score " << e;

  // Without the group limit the biased top-2 is experts 4 (1.231) and 0 (.881).
  const RouterParams flat{.score_func = ScoreFunc::sigmoid, .top_k = 2};
  EXPECT_EQ(values<std::int32_t>(route(logits, bias, flat).idx), (std::vector<std::int32_t>{4, 0}));
}

TEST(MoeRouter, SoftmaxWithoutNormalisationKeepsTheRawProbabilities) {
  const Tensor logits = f32({1, 4}, {1, 2, 3, 0});
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0) + 1.0;
  const double p2 = std::exp(3.0) / z, p1 = std::exp(2.0) / z;
  const Routed raw = route(logits, Tensor(), {.score_func = ScoreFunc::softmax, .top_k = 2, .normalize = false});
  EXPECT_EQ(values<std::int32_t>(raw.idx), (std::vector<std::int32_t>{2, 1}));
  EXPECT_NEAR(raw.gates.data<float>()[0], p2, 1e-7);
  EXPECT_NEAR(raw.gates.data<float>()[1], p1, 1e-7);
  double total = 0;
  for (int e = 0; e < 4; ++e) total += raw.scores.data<float>()[e];
  EXPECT_NEAR(total, 1.0, 1e-6);

  const Routed norm = route(logits, Tensor(), {.score_func = ScoreFunc::softmax, .top_k = 2, .route_scale = 16.0f});
  EXPECT_NEAR(norm.gates.data<float>()[0], 16.0 * p2 / (p1 + p2), 2e-6);
  EXPECT_NEAR(norm.gates.data<float>()[1], 16.0 * p1 / (p1 + p2), 2e-6);
}

TEST(MoeRouter, SigmoidGatesAreNormalisedThenScaled) {
  const Routed r = route(f32({1, 4}, {0, 1, -1, 2}), Tensor(),
                         {.score_func = ScoreFunc::sigmoid, .top_k = 2, .route_scale = 2.5f});
  EXPECT_EQ(values<std::int32_t>(r.idx), (std::vector<std::int32_t>{3, 1}));
  const double s3 = sigmoid(2.0), s1 = sigmoid(1.0);
  EXPECT_NEAR(r.gates.data<float>()[0], 2.5 * s3 / (s3 + s1), 1e-6);
  EXPECT_NEAR(r.gates.data<float>()[1], 2.5 * s1 / (s3 + s1), 1e-6);
}

TEST(MoeRouter, TiesGoToTheLowerGroupAndExpertIndex) {
  const RouterParams k3{.score_func = ScoreFunc::sigmoid, .top_k = 3};
  EXPECT_EQ(values<std::int32_t>(route(f32({1, 6}, std::vector<float>(6, 0.5f)), Tensor(), k3).idx),
            (std::vector<std::int32_t>{0, 1, 2}));
  const RouterParams grouped{.score_func = ScoreFunc::softmax, .top_k = 2, .n_groups = 3, .topk_groups = 1};
  EXPECT_EQ(values<std::int32_t>(route(f32({1, 6}, std::vector<float>(6, -1.0f)), Tensor(), grouped).idx),
            (std::vector<std::int32_t>{0, 1}));
  // Experts 1 and 2 tie for first, 0 and 3 for third. A bias of s1 - s0 on expert 3 (exact: Sterbenz)
  // lifts it level with 1 and 2, and it comes after them.
  const Tensor logits = f32({1, 4}, {0.0f, 1.0f, 1.0f, 0.0f});
  const Routed plain = route(logits, Tensor(), k3);
  EXPECT_EQ(values<std::int32_t>(plain.idx), (std::vector<std::int32_t>{1, 2, 0}));
  const float lift = plain.scores.data<float>()[1] - plain.scores.data<float>()[0];
  EXPECT_EQ(values<std::int32_t>(route(logits, f32({4}, {0, 0, 0, lift}), k3).idx), (std::vector<std::int32_t>{1, 2, 3}));
}

TEST(MoeRouter, BadParametersNameTheShapes) {
  const Tensor logits = f32({2, 8}, std::vector<float>(16, 0.0f));
  EXPECT_THROW(route(logits, Tensor(), {.top_k = 5, .n_groups = 4, .topk_groups = 2}), Error);  // 4 reachable
  EXPECT_THROW(route(logits, Tensor(), {.top_k = 1, .n_groups = 3}), Error);                    // 3 does not divide 8
  EXPECT_THROW(route(logits, f32({7}, std::vector<float>(7, 0.0f)), {.top_k = 1}), Error);
  Tensor idx = Tensor::host({2, 2}, DType::i32), gates = Tensor::host({2, 2}, DType::f32);
  EXPECT_THROW(kernels::moe_router_forward(kCpu, logits, Tensor(), {.top_k = 3}, Tensor::host({2, 8}, DType::f32), idx, gates),
               Error);
}

// Two sequences of two tokens, two experts, top-1, alpha 1. Sequence 0: s' = [.75 .25], [.5 .5], counts
// [1 1], f = [1 1], P = [.625 .375] -> 1.0. Sequence 1: s' = [.5 .5], [.9 .1], counts [2 0], f = [2 0],
// P = [.7 .3] -> 1.4. Loss = (1.0 + 1.4) / 2.
TEST(MoeBalance, LossMatchesAHandComputation) {
  const Tensor scores = f32({4, 2}, {0.6f, 0.2f, 0.3f, 0.3f, 0.5f, 0.5f, 0.9f, 0.1f});
  const Tensor idx = i32({4, 1}, {0, 1, 0, 0});
  Tensor loss = Tensor::host({1}, DType::f32), counts = Tensor::host({2}, DType::i32);
  kernels::moe_balance_forward(kCpu, scores, idx, {.seq_len = 2, .alpha = 1.0f}, loss, counts);
  EXPECT_NEAR(loss.data<float>()[0], 1.2, 1e-6);
  EXPECT_EQ(values<std::int32_t>(counts), (std::vector<std::int32_t>{3, 1}));
  kernels::moe_balance_forward(kCpu, scores, idx, {.seq_len = 4, .alpha = 1e-4f}, loss, counts);
  // One sequence of 4: counts [3 1], f = [1.5 .5], P = [.6625 .3375]: 1e-4 * (0.99375 + 0.16875).
  EXPECT_NEAR(loss.data<float>()[0], 1e-4 * 1.1625, 1e-10);
  EXPECT_THROW(kernels::moe_balance_forward(kCpu, scores, idx, {.seq_len = 3}, loss, counts), Error);
}

TEST(MoeBalance, BiasMovesAgainstTheLoad) {
  Tensor bias = f32({4}, {0, 0, 1, -1});
  kernels::moe_bias_update(kCpu, i32({4}, {5, 3, 4, 4}), 0.01f, bias);  // mean 4
  EXPECT_EQ(values<float>(bias), (std::vector<float>{-0.01f, 0.01f, 1.0f, -1.0f}));
}

// Pairs (token, slot) -> expert: (0,0)->2 (0,1)->0 (1,0)->0 (1,1)->2 (2,0)->1 (2,1)->0. Expert 0 takes
// (0,1) (1,0) (2,1) as rows 0-2, expert 1 takes (2,0) as row 3, expert 2 takes (0,0) (1,1) as rows 4-5.
TEST(MoePermute, RowsAreGroupedByExpertStablyByTokenThenSlot) {
  const Tensor idx = i32({3, 2}, {2, 0, 0, 2, 1, 0});
  Tensor x = Tensor::host({3, 2}, DType::f32);
  for (int i = 0; i < 6; ++i) x.data<float>()[i] = static_cast<float>(i / 2 * 10 + i % 2);
  Tensor xp = Tensor::host({6, 2}, DType::f32), row_of = Tensor::host({3, 2}, DType::i32);
  Tensor off = Tensor::host({4}, DType::i32);
  const auto host_off = kernels::moe_permute(kCpu, x, idx, xp, row_of, off);
  EXPECT_EQ(host_off, (std::vector<std::int64_t>{0, 3, 4, 6}));
  EXPECT_EQ(values<std::int32_t>(off), (std::vector<std::int32_t>{0, 3, 4, 6}));
  EXPECT_EQ(values<std::int32_t>(row_of), (std::vector<std::int32_t>{4, 0, 1, 5, 3, 2}));
  EXPECT_EQ(values<float>(xp), (std::vector<float>{0, 1, 10, 11, 20, 21, 20, 21, 0, 1, 10, 11}));
  EXPECT_THROW(kernels::moe_permute(kCpu, x, i32({3, 2}, {2, 0, 0, 3, 1, 0}), xp, row_of, off), Error);
}

TEST(MoePermute, UnpermuteOfPermuteIsTheGateSumTimesTheRow) {
  const std::int64_t t = 37, k = 3, e = 5, d = 8;
  Tensor idx = Tensor::host({t, k}, DType::i32);
  for (std::int64_t i = 0; i < t * k; ++i) idx.data<std::int32_t>()[i] = static_cast<std::int32_t>((i * 7 + i / k) % e);
  for (DType dt : {DType::f32, DType::bf16}) {
    const Tensor x = test::random_tensor({t, d}, dt, 1);
    const Tensor gates = test::random_tensor({t, k}, DType::f32, 2);
    Tensor xp = Tensor::host({t * k, d}, dt), row_of = Tensor::host({t, k}, DType::i32);
    Tensor off = Tensor::host({e + 1}, DType::i32);
    kernels::moe_permute(kCpu, x, idx, xp, row_of, off);
    Tensor y = Tensor::host({t, d}, dt), dx = Tensor::host({t, d}, dt);
    kernels::moe_unpermute(kCpu, xp, row_of, gates, y);
    kernels::moe_permute_backward(kCpu, xp, row_of, dx);
    for (std::int64_t i = 0; i < t; ++i) {
      double gsum = 0;
      for (std::int64_t j = 0; j < k; ++j) gsum += gates.data<float>()[i * k + j];
      for (std::int64_t c = 0; c < d; ++c) {
        const double v = test::value(x, i * d + c);
        const double rel = dt == DType::f32 ? 1e-6 : 0.0079;  // bf16: one rounding of the result
        EXPECT_NEAR(test::value(y, i * d + c), gsum * v, rel * std::fabs(gsum * v) + 1e-6);
        EXPECT_NEAR(test::value(dx, i * d + c), k * v, rel * std::fabs(k * v));
      }
    }
  }
}

namespace {
// The per-expert loops in double: out = in W_e^T, d_in = d_out W_e, dW_e = dW0_e + d_out_e^T in_e.
struct NaiveExperts {
  std::vector<double> out, din, dw;
};
NaiveExperts naive(const Tensor& in, const Tensor& w, const Tensor& dout, const Tensor& dw0,
                   const std::vector<std::int64_t>& off) {
  const std::int64_t m = in.dim(0), k = in.dim(1), n = w.dim(1), e = w.dim(0);
  NaiveExperts r{std::vector<double>(m * n, 0), std::vector<double>(m * k, 0), std::vector<double>(e * n * k, 0)};
  for (std::int64_t i = 0; i < e * n * k; ++i) r.dw[i] = test::value(dw0, i);
  for (std::int64_t x = 0; x < e; ++x)
    for (std::int64_t row = off[x]; row < off[x + 1]; ++row)
      for (std::int64_t a = 0; a < n; ++a)
        for (std::int64_t b = 0; b < k; ++b) {
          const double wv = test::value(w, (x * n + a) * k + b);
          r.out[row * n + a] += test::value(in, row * k + b) * wv;
          r.din[row * k + b] += test::value(dout, row * n + a) * wv;
          r.dw[(x * n + a) * k + b] += test::value(dout, row * n + a) * test::value(in, row * k + b);
        }
  return r;
}
double max_diff(const Tensor& t, const std::vector<double>& want) {
  double m = 0;
  for (std::int64_t i = 0; i < t.numel(); ++i) m = std::max(m, std::fabs(test::value(t, i) - want[i]));
  return m;
}
}  // namespace

TEST(GroupedGemm, MatchesPerExpertLoopsWithEmptyExpertsAndAccumulatesWeightGradients) {
  const std::vector<std::int64_t> off = {0, 3, 3, 8, 10, 10};  // experts 1 and 4 get no rows
  const std::int64_t m = 10, k = 6, n = 4, e = 5;
  const Tensor in = test::random_tensor({m, k}, DType::f32, 3), w = test::random_tensor({e, n, k}, DType::f32, 4);
  const Tensor dout = test::random_tensor({m, n}, DType::f32, 5), dw0 = test::random_tensor({e, n, k}, DType::f32, 6);
  const NaiveExperts want = naive(in, w, dout, dw0, off);
  Tensor out = Tensor::host({m, n}, DType::f32), din = Tensor::host({m, k}, DType::f32);
  Tensor dw = kCpu.to_here(dw0);
  kernels::grouped_gemm(kCpu, in, w, out, off, {.trans_b = true});
  kernels::grouped_gemm(kCpu, dout, w, din, off);
  kernels::grouped_gemm(kCpu, dout, in, dw, off, {.trans_a = true, .beta = 1.0f});
  EXPECT_LE(max_diff(out, want.out), 1e-5);
  EXPECT_LE(max_diff(din, want.din), 1e-5);
  EXPECT_LE(max_diff(dw, want.dw), 1e-5);
  // beta 0 overwrites every expert's gradient, the empty ones with zeros.
  kernels::grouped_gemm(kCpu, dout, in, dw, off, {.trans_a = true});
  for (std::int64_t i = 0; i < n * k; ++i) ASSERT_EQ(dw.data<float>()[1 * n * k + i], 0.0f);
  EXPECT_THROW(kernels::grouped_gemm(kCpu, in, w, out, std::vector<std::int64_t>{0, 3, 8, 10}, {.trans_b = true}), Error);
  EXPECT_THROW(kernels::grouped_gemm(kCpu, in, w, out, off), Error);  // W_e is [N, K]: needs trans_b
}

TEST(MoeOps, ZeroTokensAreNoOps) {
  const RouterParams p{.score_func = ScoreFunc::softmax, .top_k = 2};
  const Routed r = route(Tensor::host({0, 4}, DType::f32), Tensor(), p);
  Tensor loss = Tensor::host({1}, DType::f32), counts = Tensor::host({4}, DType::i32);
  kernels::moe_balance_forward(kCpu, r.scores, r.idx, {.seq_len = 8}, loss, counts);
  EXPECT_EQ(loss.data<float>()[0], 0.0f);
  EXPECT_EQ(values<std::int32_t>(counts), (std::vector<std::int32_t>(4, 0)));
  Tensor xp = Tensor::host({0, 3}, DType::f32), row_of = Tensor::host({0, 2}, DType::i32), off = Tensor::host({5}, DType::i32);
  EXPECT_EQ(kernels::moe_permute(kCpu, Tensor::host({0, 3}, DType::f32), r.idx, xp, row_of, off),
            (std::vector<std::int64_t>(5, 0)));
  kernels::grouped_gemm(kCpu, xp, Tensor::host({4, 5, 3}, DType::f32), Tensor::host({0, 5}, DType::f32),
                        std::vector<std::int64_t>(5, 0), {.trans_b = true});
}

namespace {
// The permuted path of MoeFfn::forward for the same routing: permute, grouped gate_up GEMM, SwiGLU,
// grouped down GEMM, gate-weighted unpermute.
Tensor permuted_experts(const Tensor& x, const Tensor& idx, const Tensor& gates, const Tensor& gate_up,
                        const Tensor& down) {
  const std::int64_t t = x.dim(0), d = x.dim(1), k = idx.dim(1), e = gate_up.dim(0), inter = down.dim(2);
  const DType dt = x.dtype();
  Tensor xp = Tensor::host({t * k, d}, dt), row_of = Tensor::host({t, k}, DType::i32), off = Tensor::host({e + 1}, DType::i32);
  const std::vector<std::int64_t> offsets = kernels::moe_permute(kCpu, x, idx, xp, row_of, off);
  Tensor gu = Tensor::host({t * k, 2 * inter}, dt), h = Tensor::host({t * k, inter}, dt), yp = Tensor::host({t * k, d}, dt);
  kernels::grouped_gemm(kCpu, xp, gate_up, gu, offsets, {.trans_b = true});
  kernels::swiglu_forward(kCpu, gu, h);
  kernels::grouped_gemm(kCpu, h, down, yp, offsets, {.trans_b = true});
  Tensor y = Tensor::host({t, d}, dt);
  kernels::moe_unpermute(kCpu, yp, row_of, gates, y);
  return y;
}
}  // namespace

// The decode-batch experts compute what the permuted path computes, with its roundings: f32 to summation
// order, bf16 within a rounding of an intermediate (a flipped bf16 ulp of h or of an expert's output).
TEST(MoeDecode, EqualsThePermutedPath) {
  const std::int64_t t = 3, k = 2, e = 8, d = 16, inter = 12;
  Tensor idx = Tensor::host({t, k}, DType::i32);
  const std::int32_t choice[] = {5, 0, 2, 7, 7, 1};  // expert 7 shared by two tokens, as at decode
  std::copy(std::begin(choice), std::end(choice), idx.data<std::int32_t>());
  const Tensor gates = test::random_tensor({t, k}, DType::f32, 4);
  for (DType dt : {DType::f32, DType::bf16}) {
    const Tensor x = test::random_tensor({t, d}, dt, 1);
    const Tensor gate_up = test::random_tensor({e, 2 * inter, d}, dt, 2, 0.3f);
    const Tensor down = test::random_tensor({e, d, inter}, dt, 3, 0.3f);
    Tensor h = Tensor::host({t * k, inter}, dt), out = Tensor::host({t, d}, dt);
    kernels::moe_decode_experts(kCpu, x, idx, gates, gate_up, down, h, out);
    const Tensor want = permuted_experts(x, idx, gates, gate_up, down);
    const double scale = test::max_error(want, Tensor::host_zeros(want.shape(), dt));
    EXPECT_LE(test::max_error(out, want), (dt == DType::f32 ? 1e-6 : 2e-2) * scale) << dtype_name(dt);
    EXPECT_GT(scale, 0.1);
  }
}

TEST(MoeDecode, BadExpertIndicesAndShapesAreRefused) {
  const Tensor x = test::random_tensor({2, 8}, DType::f32, 1), gates = test::random_tensor({2, 2}, DType::f32, 2);
  const Tensor gate_up = test::random_tensor({4, 6, 8}, DType::f32, 3), down = test::random_tensor({4, 8, 3}, DType::f32, 4);
  Tensor h = Tensor::host({4, 3}, DType::f32), out = Tensor::host({2, 8}, DType::f32);
  const Tensor bad = i32({2, 2}, {0, 1, 4, 2});
  EXPECT_THROW(kernels::moe_decode_experts(kCpu, x, bad, gates, gate_up, down, h, out), Error);
  const Tensor ok = i32({2, 2}, {0, 1, 3, 2});
  EXPECT_THROW(kernels::moe_decode_experts(kCpu, x, ok, gates, gate_up, down, Tensor::host({2, 3}, DType::f32), out),
               Error);
  EXPECT_THROW(kernels::moe_decode_experts(kCpu, x, ok, gates, down, down, h, out), Error);
  EXPECT_NO_THROW(kernels::moe_decode_experts(kCpu, x, ok, gates, gate_up, down, h, out));
}
