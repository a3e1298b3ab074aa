// CPU reference attention: against a naive double-precision S x S softmax, segment semantics, argument
// checks, grouped-query K/V heads. Its finite-difference gradients are in the op table
// (tests/kernels/op_cases_attention.cpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "kernels/attention.hpp"
#include "kernels/profile.hpp"
#include "kernels/test_util.hpp"

using namespace r1;
using kernels::Context;

namespace {
struct Dims {
  std::int64_t B, S, H, Dqk, Dv;
};

Tensor segments(std::int64_t B, std::int64_t S, std::int64_t run) {
  Tensor seg = Tensor::host({B, S}, DType::i32);
  for (std::int64_t i = 0; i < B * S; ++i) seg.data<std::int32_t>()[i] = static_cast<std::int32_t>((i % S + 3 * (i / S)) / run);
  return seg;
}

// The definition, literally: the full S x S score matrix, masked, softmax per row, in double.
void naive_forward(const Dims& d, const Tensor& q, const Tensor& k, const Tensor& v, double scale, const Tensor& seg,
                   std::vector<double>& out, std::vector<double>& lse) {
  out.assign(static_cast<std::size_t>(d.B * d.S * d.H * d.Dv), 0.0);
  lse.assign(static_cast<std::size_t>(d.B * d.H * d.S), 0.0);
  const double inf = std::numeric_limits<double>::infinity();
  for (std::int64_t b = 0; b < d.B; ++b)
    for (std::int64_t h = 0; h < d.H; ++h) {
      std::vector<std::vector<double>> s(d.S, std::vector<double>(d.S, -inf));
      for (std::int64_t i = 0; i < d.S; ++i)
        for (std::int64_t j = 0; j < d.S; ++j) {
          const bool same = !seg.defined() || seg.data<std::int32_t>()[b * d.S + i] == seg.data<std::int32_t>()[b * d.S + j];
          if (j > i || !same) continue;
          double dot = 0;
          for (std::int64_t c = 0; c < d.Dqk; ++c)
            dot += test::value(q, ((b * d.S + i) * d.H + h) * d.Dqk + c) * test::value(k, ((b * d.S + j) * d.H + h) * d.Dqk + c);
          s[i][j] = scale * dot;
        }
      for (std::int64_t i = 0; i < d.S; ++i) {
        double mx = -inf, sum = 0;
        for (double x : s[i]) mx = std::max(mx, x);
        for (double x : s[i]) sum += std::exp(x - mx);
        lse[(b * d.H + h) * d.S + i] = mx + std::log(sum);
        for (std::int64_t j = 0; j < d.S; ++j) {
          const double p = std::exp(s[i][j] - mx) / sum;
          for (std::int64_t c = 0; c < d.Dv; ++c)
            out[((b * d.S + i) * d.H + h) * d.Dv + c] += p * test::value(v, ((b * d.S + j) * d.H + h) * d.Dv + c);
        }
      }
    }
}

struct Inputs {
  Tensor q, k, v, out, lse;
};
Inputs make_inputs(const Dims& d, std::uint32_t seed, float qscale = 1.0f) {
  Inputs in;
  in.q = test::random_tensor({d.B, d.S, d.H, d.Dqk}, DType::f32, seed, qscale);
  in.k = test::random_tensor({d.B, d.S, d.H, d.Dqk}, DType::f32, seed + 1);
  in.v = test::random_tensor({d.B, d.S, d.H, d.Dv}, DType::f32, seed + 2);
  in.out = Tensor::host({d.B, d.S, d.H, d.Dv}, DType::f32);
  in.lse = Tensor::host({d.B, d.H, d.S}, DType::f32);
  return in;
}
}  // namespace

// f32 reference vs the double-precision definition: only f32 rounding of dot products, exponentials and
// the weighted sum separates them. A score of magnitude x carries ~x * 6e-8 of rounding, which moves its
// probability by as much: outputs (values ~N(0,1)) agree to 2e-6 per unit of query scale (measured
// 7.6e-7 at 1, 2.2e-5 at 30); lse to 1e-5 of 1 + |lse| (measured 2.5e-6).
TEST(AttentionCpu, ForwardMatchesNaiveSoftmax) {
  const Context ctx = Context::cpu();
  const Dims cases[] = {{1, 1, 1, 16, 16}, {2, 17, 3, 48, 32}, {1, 70, 2, 64, 64}, {2, 33, 1, 24, 40}};
  for (const Dims& d : cases)
    for (bool with_seg : {false, true})
      for (float qscale : {1.0f, 30.0f}) {  // 30: scores in the hundreds, stable only with the max subtracted
        Inputs in = make_inputs(d, 10, qscale);
        const Tensor seg = with_seg ? segments(d.B, d.S, 5) : Tensor();
        const float scale = 1.0f / std::sqrt(static_cast<float>(d.Dqk));
        kernels::attention_forward(ctx, in.q, in.k, in.v, scale, seg, in.out, in.lse);
        std::vector<double> out, lse;
        naive_forward(d, in.q, in.k, in.v, scale, seg, out, lse);
        double err = 0, lse_err = 0;
        for (std::int64_t i = 0; i < in.out.numel(); ++i) err = std::max(err, std::fabs(out[i] - test::value(in.out, i)));
        for (std::int64_t i = 0; i < in.lse.numel(); ++i)
          lse_err = std::max(lse_err, std::fabs(lse[i] - test::value(in.lse, i)) / (1 + std::fabs(lse[i])));
        const std::string what = "S " + std::to_string(d.S) + " Dqk " + std::to_string(d.Dqk) + " seg " +
                                 std::to_string(with_seg) + " qscale " + std::to_string(qscale);
        EXPECT_LE(err, 2e-6 * qscale) << what;
        EXPECT_LE(lse_err, 1e-5) << what;
      }
}

// Packed samples: attention over a packed row equals attention over each sample alone.
TEST(AttentionCpu, SegmentsBehaveAsSeparateSequences) {
  const Context ctx = Context::cpu();
  const std::vector<std::int64_t> lengths = {3, 1, 6, 4};
  const Dims packed{1, 14, 2, 32, 16};
  Inputs in = make_inputs(packed, 20);
  Tensor seg = Tensor::host({1, 14}, DType::i32);
  std::int64_t pos = 0;
  for (std::size_t s = 0; s < lengths.size(); ++s)
    for (std::int64_t i = 0; i < lengths[s]; ++i) seg.data<std::int32_t>()[pos++] = static_cast<std::int32_t>(7 + s);
  kernels::attention_forward(ctx, in.q, in.k, in.v, 0.3f, seg, in.out, in.lse);
  const std::int64_t qrow = packed.H * packed.Dqk, vrow = packed.H * packed.Dv;
  pos = 0;
  for (std::int64_t len : lengths) {
    const Dims one{1, len, packed.H, packed.Dqk, packed.Dv};
    Inputs alone = make_inputs(one, 99);
    std::copy_n(in.q.data<float>() + pos * qrow, len * qrow, alone.q.data<float>());
    std::copy_n(in.k.data<float>() + pos * qrow, len * qrow, alone.k.data<float>());
    std::copy_n(in.v.data<float>() + pos * vrow, len * vrow, alone.v.data<float>());
    kernels::attention_forward(ctx, alone.q, alone.k, alone.v, 0.3f, Tensor(), alone.out, alone.lse);
    for (std::int64_t i = 0; i < len * vrow; ++i)
      ASSERT_NEAR(alone.out.data<float>()[i], in.out.data<float>()[pos * vrow + i], 1e-6) << "sample at " << pos;
    for (std::int64_t h = 0; h < packed.H; ++h)
      for (std::int64_t i = 0; i < len; ++i)
        ASSERT_NEAR(alone.lse.data<float>()[h * len + i], in.lse.data<float>()[h * packed.S + pos + i], 1e-5);
    // The first token of a sample sees only itself.
    for (std::int64_t c = 0; c < vrow; ++c) ASSERT_EQ(in.out.data<float>()[pos * vrow + c], in.v.data<float>()[pos * vrow + c]);
    pos += len;
  }
}

// Grouped-query attention is multi-head attention on K/V repeated over each group of G query heads, with dk
// and dv of a K/V head the sum of its G heads' gradients (f32 sums in another order: 1e-5 of the largest).
TEST(AttentionCpu, GroupedKvHeadsEqualMultiHeadOnRepeatedKv) {
  const Context ctx = Context::cpu();
  const std::int64_t B = 2, S = 11, H = 6, Hkv = 2, G = H / Hkv, Dqk = 16, Dv = 8;
  const Tensor seg = segments(B, S, 4);
  const Tensor q = test::random_tensor({B, S, H, Dqk}, DType::f32, 50), dout = test::random_tensor({B, S, H, Dv}, DType::f32, 53);
  const Tensor k = test::random_tensor({B, S, Hkv, Dqk}, DType::f32, 51), v = test::random_tensor({B, S, Hkv, Dv}, DType::f32, 52);
  const auto repeat = [&](const Tensor& t) {  // [B, S, Hkv, D] -> [B, S, H, D]
    const std::int64_t d = t.dim(3);
    Tensor r = Tensor::host({B, S, H, d}, DType::f32);
    for (std::int64_t row = 0; row < B * S; ++row)
      for (std::int64_t h = 0; h < H; ++h)
        std::copy_n(t.data<float>() + (row * Hkv + h / G) * d, d, r.data<float>() + (row * H + h) * d);
    return r;
  };
  const Tensor k_all = repeat(k), v_all = repeat(v);
  const Tensor out = Tensor::host({B, S, H, Dv}, DType::f32), lse = Tensor::host({B, H, S}, DType::f32);
  const Tensor out_all = Tensor::host({B, S, H, Dv}, DType::f32), lse_all = Tensor::host({B, H, S}, DType::f32);
  kernels::attention_forward(ctx, q, k, v, 0.3f, seg, out, lse);
  kernels::attention_forward(ctx, q, k_all, v_all, 0.3f, seg, out_all, lse_all);
  for (std::int64_t i = 0; i < out.numel(); ++i) ASSERT_EQ(out.data<float>()[i], out_all.data<float>()[i]) << i;
  for (std::int64_t i = 0; i < lse.numel(); ++i) ASSERT_EQ(lse.data<float>()[i], lse_all.data<float>()[i]) << i;

  const Tensor dq = Tensor::host(q.shape(), DType::f32), dk = Tensor::host(k.shape(), DType::f32);
  const Tensor dv = Tensor::host(v.shape(), DType::f32), dq_all = Tensor::host(q.shape(), DType::f32);
  const Tensor dk_all = Tensor::host(k_all.shape(), DType::f32), dv_all = Tensor::host(v_all.shape(), DType::f32);
  kernels::attention_backward(ctx, q, k, v, out, dout, lse, seg, 0.3f, dq, dk, dv);
  kernels::attention_backward(ctx, q, k_all, v_all, out, dout, lse, seg, 0.3f, dq_all, dk_all, dv_all);
  for (std::int64_t i = 0; i < dq.numel(); ++i) ASSERT_EQ(dq.data<float>()[i], dq_all.data<float>()[i]) << i;
  const auto check_group_sums = [&](const Tensor& grad, const Tensor& grad_all, const char* name) {
    const std::int64_t d = grad.dim(3);
    const double tol = 1e-5 * test::max_error(grad_all, Tensor::host_zeros(grad_all.shape(), DType::f32)) * G;
    for (std::int64_t row = 0; row < B * S; ++row)
      for (std::int64_t hk = 0; hk < Hkv; ++hk)
        for (std::int64_t c = 0; c < d; ++c) {
          double sum = 0;
          for (std::int64_t h = hk * G; h < (hk + 1) * G; ++h) sum += grad_all.data<float>()[(row * H + h) * d + c];
          ASSERT_NEAR(grad.data<float>()[(row * Hkv + hk) * d + c], sum, tol) << name << " row " << row << " head " << hk;
        }
  };
  check_group_sums(dk, dk_all, "dk");
  check_group_sums(dv, dv_all, "dv");
}

TEST(AttentionCpu, BadArgumentsNameTheShapes) {
  const Context ctx = Context::cpu();
  const Dims d{2, 8, 2, 16, 8};
  Inputs in = make_inputs(d, 30);
  const auto fwd = [&](const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& seg, const Tensor& out,
                       const Tensor& lse, float scale = 0.25f) {
    kernels::attention_forward(ctx, q, k, v, scale, seg, out, lse);
  };
  EXPECT_NO_THROW(fwd(in.q, in.k, in.v, segments(2, 8, 3), in.out, in.lse));
  EXPECT_THROW(fwd(in.q, Tensor::host({2, 8, 2, 8}, DType::f32), in.v, Tensor(), in.out, in.lse), Error);  // k head dim
  EXPECT_THROW(fwd(in.q, in.k, Tensor::host({2, 7, 2, 8}, DType::f32), Tensor(), in.out, in.lse), Error);  // v seq
  EXPECT_THROW(fwd(in.q, in.k, in.v, Tensor(), Tensor::host({2, 8, 2, 16}, DType::f32), in.lse), Error);  // out Dv
  EXPECT_THROW(fwd(in.q, in.k, in.v, Tensor(), in.out, Tensor::host({2, 8, 2}, DType::f32)), Error);  // lse [B,S,H]
  EXPECT_THROW(fwd(in.q, in.k, in.v, Tensor::host({2, 7}, DType::i32), in.out, in.lse), Error);  // seg shape
  EXPECT_THROW(fwd(in.q, in.k, in.v, Tensor::host({2, 8}, DType::i64), in.out, in.lse), Error);  // seg dtype
  EXPECT_THROW(fwd(in.q.view({16, 2, 16}), in.k.view({16, 2, 16}), in.v.view({16, 2, 8}), Tensor(),
                   in.out.view({16, 2, 8}), in.lse), Error);  // rank 3
  EXPECT_THROW(fwd(in.q, in.k, test::random_tensor({2, 8, 2, 8}, DType::bf16, 1), Tensor(), in.out, in.lse), Error);
  EXPECT_THROW(fwd(in.q, in.k, in.v, Tensor(), in.out, in.lse, 0.0f), Error);
  const Tensor k3 = Tensor::host({1, 2, 3, 16}, DType::f32), v3 = Tensor::host({1, 2, 3, 8}, DType::f32);
  EXPECT_THROW(fwd(Tensor::host({1, 2, 4, 16}, DType::f32), k3, v3, Tensor(), Tensor::host({1, 2, 4, 8}, DType::f32),
                   Tensor::host({1, 4, 2}, DType::f32)), Error);  // 3 K/V heads do not divide 4 query heads
  EXPECT_THROW(fwd(Tensor::host({1, 2, 3, 16}, DType::f32), k3, Tensor::host({1, 2, 1, 8}, DType::f32), Tensor(),
                   Tensor::host({1, 2, 3, 8}, DType::f32), Tensor::host({1, 3, 2}, DType::f32)), Error);  // v heads != k heads
  const Tensor big = Tensor::host({1, 2, 1, 272}, DType::f32);
  EXPECT_THROW(fwd(big, big, Tensor::host({1, 2, 1, 8}, DType::f32), Tensor(), Tensor::host({1, 2, 1, 8}, DType::f32),
                   Tensor::host({1, 1, 2}, DType::f32)), Error);  // head dim above 256
  try {
    fwd(in.q, Tensor::host({2, 8, 2, 8}, DType::f32), in.v, Tensor(), in.out, in.lse);
    FAIL() << "expected a user error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::user);
    EXPECT_NE(std::string(e.what()).find("[2, 8, 2, 8]"), std::string::npos) << e.what();
  }
  const Tensor dq = Tensor::host({2, 8, 2, 16}, DType::f32), dk = Tensor::host({2, 8, 2, 16}, DType::f32);
  const Tensor dv = Tensor::host({2, 8, 2, 8}, DType::f32);
  EXPECT_THROW(kernels::attention_backward(ctx, in.q, in.k, in.v, in.out, in.out, in.lse, Tensor(), 0.25f, dq, dk,
                                           Tensor::host({2, 8, 2, 16}, DType::f32)), Error);  // dv shape
  EXPECT_THROW(kernels::attention_backward(ctx, in.q, in.k, in.v, in.out, Tensor::host({2, 8, 2, 8}, DType::bf16), in.lse,
                                           Tensor(), 0.25f, dq, dk, dv), Error);  // dout dtype
}

// Under the region profiler the fused kernel is its own region inside its caller's ("attn/core"), so a step's
// profile separates the attention core from the projections around it.
TEST(AttentionCpu, TheKernelIsAProfiledRegionOfItsOwn) {
  const Dims d{1, 8, 2, 8, 8};
  Inputs in = make_inputs(d, 70);
  const Tensor dout = test::random_tensor(in.out.shape(), DType::f32, 73);
  const Tensor dq = Tensor::host(in.q.shape(), DType::f32), dk = Tensor::host(in.k.shape(), DType::f32);
  const Tensor dv = Tensor::host(in.v.shape(), DType::f32);
  const Context cpu = Context::cpu();
  kernels::profile::take();
  kernels::profile::set_enabled(true);
  {
    const kernels::ProfileRegion attn(cpu, "attn");
    kernels::attention_forward(cpu, in.q, in.k, in.v, 0.5f, Tensor(), in.out, in.lse);
    kernels::attention_backward(cpu, in.q, in.k, in.v, in.out, dout, in.lse, Tensor(), 0.5f, dq, dk, dv);
  }
  kernels::profile::set_enabled(false);
  const auto totals = kernels::profile::take();
  ASSERT_TRUE(totals.contains("attn/core"));
  EXPECT_EQ(totals.at("attn/core").calls, 2);
  EXPECT_EQ(totals.size(), 2u);
}
