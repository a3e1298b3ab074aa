// CPU references of the transformer building blocks (rmsnorm, swiglu, rope, cross_entropy, adamw,
// embedding) against naive double-precision loops, edge cases, and user errors that name the shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <vector>

#include "kernels/adamw.hpp"
#include "kernels/cross_entropy.hpp"
#include "kernels/embedding.hpp"
#include "kernels/rmsnorm.hpp"
#include "kernels/rope.hpp"
#include "kernels/swiglu.hpp"
#include "kernels/test_util.hpp"

using namespace r1;
using kernels::Context;

namespace {
const Context cpu = Context::cpu();

// Runs f, which must throw a user error whose message contains `needle` (a shape the user controls).
template <class F> void expect_user_error(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected a user error mentioning " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::user) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

Tensor ints(const std::vector<std::int32_t>& v) {
  Tensor t = Tensor::host({static_cast<std::int64_t>(v.size())}, DType::i32);
  std::copy(v.begin(), v.end(), t.data<std::int32_t>());
  return t;
}

// Output tolerance: f32 results agree to f32 rounding; a bf16 result carries one bf16 rounding (2^-8).
double out_tol(DType dt) { return dt == DType::bf16 ? 0.0079 : 2e-6; }

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}
double max_diff(const Tensor& got, const std::vector<double>& ref) {
  double e = 0;
  for (std::int64_t i = 0; i < got.numel(); ++i) e = std::max(e, std::fabs(test::value(got, i) - ref[i]));
  return e;
}
}  // namespace

TEST(RmsNormCpu, ForwardMatchesDoubleLoop) {
  for (DType dt : {DType::f32, DType::bf16})
    for (auto [rows, d] : {std::pair{1, 1}, std::pair{3, 17}, std::pair{64, 256}}) {
      const Tensor x = test::random_tensor({rows, d}, dt, 1), w = test::random_tensor({d}, DType::f32, 2);
      Tensor y = Tensor::host({rows, d}, dt), rstd = Tensor::host({rows}, DType::f32);
      kernels::rmsnorm_forward(cpu, x, w, 1e-6f, y, rstd);
      std::vector<double> ref(rows * d), rref(rows);
      for (int t = 0; t < rows; ++t) {
        double ss = 0;
        for (int j = 0; j < d; ++j) ss += test::value(x, t * d + j) * test::value(x, t * d + j);
        rref[t] = 1.0 / std::sqrt(ss / d + 1e-6);
        for (int j = 0; j < d; ++j) ref[t * d + j] = test::value(x, t * d + j) * rref[t] * test::value(w, j);
      }
      EXPECT_LE(max_diff(y, ref), out_tol(dt) * max_abs(ref)) << dtype_name(dt) << " " << rows << "x" << d;
      EXPECT_LE(max_diff(rstd, rref), 1e-6 * max_abs(rref));
    }
}

TEST(RmsNormCpu, BackwardMatchesDoubleLoopAndAccumulatesWeightGrad) {
  const int rows = 5, d = 33;
  const Tensor x = test::random_tensor({rows, d}, DType::f32, 3), w = test::random_tensor({d}, DType::f32, 4);
  const Tensor dy = test::random_tensor({rows, d}, DType::f32, 5);
  Tensor y = Tensor::host({rows, d}, DType::f32), rstd = Tensor::host({rows}, DType::f32);
  kernels::rmsnorm_forward(cpu, x, w, 1e-5f, y, rstd);
  Tensor dx = Tensor::host({rows, d}, DType::f32), dw = Tensor::host({d}, DType::f32);
  for (int j = 0; j < d; ++j) dw.data<float>()[j] = 1.0f;  // accumulated onto
  kernels::rmsnorm_backward(cpu, dy, x, w, rstd, dx, dw);
  std::vector<double> rdx(rows * d), rdw(d, 1.0);
  for (int t = 0; t < rows; ++t) {
    const double r = test::value(rstd, t);
    double s = 0;
    for (int j = 0; j < d; ++j) s += test::value(dy, t * d + j) * test::value(w, j) * test::value(x, t * d + j);
    for (int j = 0; j < d; ++j) {
      rdx[t * d + j] = r * test::value(w, j) * test::value(dy, t * d + j) - r * r * r * s / d * test::value(x, t * d + j);
      rdw[j] += test::value(dy, t * d + j) * test::value(x, t * d + j) * r;
    }
  }
  EXPECT_LE(max_diff(dx, rdx), 2e-6 * max_abs(rdx));
  EXPECT_LE(max_diff(dw, rdw), 2e-6 * max_abs(rdw));
}

TEST(RmsNormCpu, BadShapesAreUserErrorsNamingThem) {
  const Tensor x = Tensor::host({4, 8}, DType::f32), y = Tensor::host({4, 8}, DType::f32);
  const Tensor rstd = Tensor::host({4}, DType::f32);
  expect_user_error([&] { kernels::rmsnorm_forward(cpu, x, Tensor::host({7}, DType::f32), 1e-6f, y, rstd); }, "[7]");
  expect_user_error([&] { kernels::rmsnorm_forward(cpu, x, Tensor::host({8}, DType::f32), 1e-6f, Tensor::host({4, 9}, DType::f32), rstd); }, "[4, 9]");
  expect_user_error([&] { kernels::rmsnorm_forward(cpu, Tensor::host({4, 8}, DType::i32), Tensor::host({8}, DType::f32), 1e-6f, y, rstd); }, "i32[4, 8]");
}

TEST(SwigluCpu, ForwardAndBackwardMatchDoubleLoop) {
  const int rows = 6, h = 13;
  for (DType dt : {DType::f32, DType::bf16}) {
    const Tensor gu = test::random_tensor({rows, 2 * h}, dt, 6, 3.0f), dout = test::random_tensor({rows, h}, dt, 7);
    Tensor out = Tensor::host({rows, h}, dt), dgu = Tensor::host({rows, 2 * h}, dt);
    kernels::swiglu_forward(cpu, gu, out);
    kernels::swiglu_backward(cpu, dout, gu, dgu);
    std::vector<double> ro(rows * h), rd(rows * 2 * h);
    for (int t = 0; t < rows; ++t)
      for (int j = 0; j < h; ++j) {
        const double g = test::value(gu, t * 2 * h + j), u = test::value(gu, t * 2 * h + h + j);
        const double s = 1.0 / (1.0 + std::exp(-g)), d = test::value(dout, t * h + j);
        ro[t * h + j] = g * s * u;
        rd[t * 2 * h + j] = d * u * s * (1 + g * (1 - s));
        rd[t * 2 * h + h + j] = d * g * s;
      }
    EXPECT_LE(max_diff(out, ro), out_tol(dt) * max_abs(ro)) << dtype_name(dt);
    EXPECT_LE(max_diff(dgu, rd), out_tol(dt) * max_abs(rd)) << dtype_name(dt);
  }
}

TEST(SwigluCpu, BackwardInPlaceEqualsOutOfPlace) {
  const Tensor gu = test::random_tensor({4, 20}, DType::f32, 8), dout = test::random_tensor({4, 10}, DType::f32, 9);
  Tensor dgu = Tensor::host({4, 20}, DType::f32), inplace = cpu.to_here(gu);
  kernels::swiglu_backward(cpu, dout, gu, dgu);
  kernels::swiglu_backward(cpu, dout, inplace, inplace);
  EXPECT_EQ(test::max_error(dgu, inplace), 0.0);
}

TEST(SwigluCpu, BadShapesAreUserErrorsNamingThem) {
  expect_user_error([&] { kernels::swiglu_forward(cpu, Tensor::host({3, 9}, DType::f32), Tensor::host({3, 4}, DType::f32)); }, "[3, 9]");
  expect_user_error([&] { kernels::swiglu_forward(cpu, Tensor::host({3, 8}, DType::f32), Tensor::host({3, 8}, DType::f32)); }, "[3, 4]");
}

TEST(RopeTables, PlainRopeIsThetaPowersOfPosition) {
  const kernels::RopeConfig c{.rope_dim = 8, .theta = 10000.0};
  const auto t = kernels::rope_tables(cpu, c, 50);
  EXPECT_EQ(t.cos.shape(), (Shape{50, 4}));
  EXPECT_EQ(t.attention_mscale, 1.0f);
  for (int p : {0, 1, 49})
    for (int i = 0; i < 4; ++i) {
      const double a = p * std::pow(10000.0, -2.0 * i / 8);
      EXPECT_NEAR(t.cos.data<float>()[p * 4 + i], std::cos(a), 1e-7);
      EXPECT_NEAR(t.sin.data<float>()[p * 4 + i], std::sin(a), 1e-7);
    }
}

// DeepSeek-V3 YaRN defaults (rope_dim 64, theta 10000, factor 40, original 4096, beta 32/1): the correction
// dims are floor(10.2) = 10 and ceil(22.9) = 23, so dims < 10 keep inv_freq, dims >= 23 are divided by 40,
// and dims in between ramp linearly.
TEST(RopeTables, YarnInterpolatesBetweenTheCorrectionDims) {
  const kernels::RopeConfig c{.rope_dim = 64, .theta = 10000.0, .factor = 40.0, .original_seq_len = 4096,
                              .beta_fast = 32.0, .beta_slow = 1.0, .mscale = 1.0};
  const auto t = kernels::rope_tables(cpu, c, 4097);
  EXPECT_NEAR(t.attention_mscale, 0.1 * std::log(40.0) + 1.0, 1e-6);
  const auto freq = [&](int i) { return std::atan2(t.sin.data<float>()[32 + i], t.cos.data<float>()[32 + i]); };
  const auto base = [](int i) { return std::pow(10000.0, -2.0 * i / 64); };
  const double cd = [](double r) { return 64 * std::log(4096 / (r * 2 * std::numbers::pi)) / (2 * std::log(10000.0)); }(32.0);
  ASSERT_EQ(std::floor(cd), 10.0);
  EXPECT_NEAR(freq(5), base(5), 1e-6);
  EXPECT_NEAR(freq(30), base(30) / 40, 1e-9);
  const double ramp = (16.0 - 10.0) / (23.0 - 10.0);
  EXPECT_NEAR(freq(16), base(16) / 40 * ramp + base(16) * (1 - ramp), 1e-7);
  // Within the original context (max_pos <= original_seq_len) DeepSeek-V3 does not apply YaRN.
  const auto plain = kernels::rope_tables(cpu, c, 4096);
  EXPECT_EQ(plain.attention_mscale, 1.0f);
  EXPECT_NEAR(std::atan2(plain.sin.data<float>()[32 + 30], plain.cos.data<float>()[32 + 30]), base(30), 1e-9);
}

TEST(RopeCpu, RotatesInterleavedPairsOfTheSliceOnly) {
  const int rows = 3, heads = 2, row = 12, offset = 4;
  const auto tab = kernels::rope_tables(cpu, {.rope_dim = 6}, 10);
  const Tensor x0 = test::random_tensor({rows, heads, row}, DType::f32, 10);
  Tensor x = cpu.to_here(x0);
  const Tensor pos = ints({7, 0, 3});
  kernels::rope_forward(cpu, x, pos, tab, offset);
  for (int t = 0; t < rows; ++t)
    for (int h = 0; h < heads; ++h)
      for (int j = 0; j < row; ++j) {
        const std::int64_t k = (t * heads + h) * row + j;
        if (j < offset || j >= offset + 6) {
          EXPECT_EQ(test::value(x, k), test::value(x0, k));
          continue;
        }
        const int i = (j - offset) / 2;
        const double a = pos.data<std::int32_t>()[t] * std::pow(10000.0, -2.0 * i / 6);
        const std::int64_t k0 = k - (j - offset) % 2;
        const double e0 = test::value(x0, k0), e1 = test::value(x0, k0 + 1);
        const double want = (j - offset) % 2 == 0 ? e0 * std::cos(a) - e1 * std::sin(a) : e0 * std::sin(a) + e1 * std::cos(a);
        EXPECT_NEAR(test::value(x, k), want, 2e-6);
      }
}

TEST(RopeCpu, BackwardUndoesForwardOnASingleHeadRow) {
  const auto tab = kernels::rope_tables(cpu, {.rope_dim = 64}, 4096);
  const Tensor x0 = test::random_tensor({5, 576}, DType::f32, 11);  // kv_a output row: 512 latent + 64 k_pe
  Tensor x = cpu.to_here(x0);
  const Tensor pos = ints({0, 1, 100, 4000, 4095});
  kernels::rope_forward(cpu, x, pos, tab, 512);
  kernels::rope_backward(cpu, x, pos, tab, 512);
  EXPECT_LE(test::max_error(x, x0), 2e-6);  // a rotation and its inverse, each with f32 rounding
}

TEST(RopeCpu, BadArgumentsAreUserErrors) {
  const auto tab = kernels::rope_tables(cpu, {.rope_dim = 8}, 16);
  Tensor x = Tensor::host({2, 3, 10}, DType::f32);
  expect_user_error([&] { kernels::rope_forward(cpu, x, ints({0, 1}), tab, 4); }, "[2, 3, 10]");
  expect_user_error([&] { kernels::rope_forward(cpu, x, ints({0, 16}), tab, 0); }, "positions[1] = 16");
  expect_user_error([&] { kernels::rope_forward(cpu, x, ints({0, 1, 2}), tab, 0); }, "i32[3]");
  expect_user_error([&] { kernels::rope_tables(cpu, {.rope_dim = 7}, 16); }, "7");
}

TEST(CrossEntropyCpu, ForwardMatchesDoubleLoopWithIgnoredTokens) {
  const int rows = 4, v = 1000;
  for (DType dt : {DType::f32, DType::bf16}) {
    const Tensor logits = test::random_tensor({rows, v}, dt, 12, 4.0f), tg = ints({3, -1, 999, 0});
    Tensor loss = Tensor::host({rows}, DType::f32), lse = Tensor::host({rows}, DType::f32);
    kernels::cross_entropy_forward(cpu, logits, tg, loss, lse);
    for (int t = 0; t < rows; ++t) {
      double s = 0;
      for (int j = 0; j < v; ++j) s += std::exp(test::value(logits, t * v + j));
      const double l = std::log(s);
      EXPECT_NEAR(lse.data<float>()[t], l, 2e-6 * std::fabs(l));
      const int y = tg.data<std::int32_t>()[t];
      EXPECT_NEAR(loss.data<float>()[t], y < 0 ? 0.0 : l - test::value(logits, t * v + y), 4e-6 * std::fabs(l));
    }
  }
}

TEST(CrossEntropyCpu, HugeLogitsDoNotOverflow) {
  Tensor logits = Tensor::host({1, 3}, DType::f32);
  const float vals[] = {1000.0f, 1000.0f, -1000.0f};
  std::copy(vals, vals + 3, logits.data<float>());
  Tensor loss = Tensor::host({1}, DType::f32), lse = Tensor::host({1}, DType::f32);
  kernels::cross_entropy_forward(cpu, logits, ints({2}), loss, lse);
  EXPECT_NEAR(lse.data<float>()[0], 1000.0 + std::log(2.0), 1e-4);
  EXPECT_NEAR(loss.data<float>()[0], 2000.0 + std::log(2.0), 1e-3);
}

TEST(CrossEntropyCpu, BackwardIsSoftmaxMinusOneHotTimesWeightAndWorksInPlace) {
  const int rows = 3, v = 50;
  const Tensor logits = test::random_tensor({rows, v}, DType::f32, 13), tg = ints({7, -1, 49});
  Tensor loss = Tensor::host({rows}, DType::f32), lse = Tensor::host({rows}, DType::f32);
  kernels::cross_entropy_forward(cpu, logits, tg, loss, lse);
  Tensor dloss = Tensor::host({rows}, DType::f32);
  for (int t = 0; t < rows; ++t) dloss.data<float>()[t] = 0.5f + t;
  Tensor dl = Tensor::host({rows, v}, DType::f32), inplace = cpu.to_here(logits);
  kernels::cross_entropy_backward(cpu, logits, tg, lse, dloss, dl);
  kernels::cross_entropy_backward(cpu, inplace, tg, lse, dloss, inplace);
  std::vector<double> ref(rows * v);
  for (int t = 0; t < rows; ++t) {
    double s = 0;
    for (int j = 0; j < v; ++j) s += std::exp(test::value(logits, t * v + j));
    const int y = tg.data<std::int32_t>()[t];
    for (int j = 0; j < v; ++j)
      ref[t * v + j] = y < 0 ? 0.0 : (std::exp(test::value(logits, t * v + j)) / s - (j == y)) * (0.5 + t);
  }
  EXPECT_LE(max_diff(dl, ref), 2e-6);
  EXPECT_EQ(test::max_error(dl, inplace), 0.0);
}

// Vocabulary-parallel use: the logits split into two column shards, each with its targets as local
// columns or kTargetElsewhere. Combining the shards' lse and (lse - loss) gives the whole row's loss, and
// each shard's backward with the whole lse is its columns of the whole backward.
TEST(CrossEntropyCpu, ShardsWithTargetsElsewhereCombineToTheWholeVocabulary) {
  const int rows = 4, v = 40, half = v / 2;
  const Tensor logits = test::random_tensor({rows, v}, DType::f32, 17, 3.0f), tg = ints({3, -1, 25, 39});
  Tensor loss = Tensor::host({rows}, DType::f32), lse = Tensor::host({rows}, DType::f32), dloss = Tensor::host({rows}, DType::f32);
  kernels::cross_entropy_forward(cpu, logits, tg, loss, lse);
  for (int t = 0; t < rows; ++t) dloss.data<float>()[t] = 1.0f + t;
  Tensor whole_grad = Tensor::host({rows, v}, DType::f32);
  kernels::cross_entropy_backward(cpu, logits, tg, lse, dloss, whole_grad);
  std::vector<Tensor> shard_lse, shard_loss, shard_logits, shard_tg;
  for (int s = 0; s < 2; ++s) {
    Tensor part = Tensor::host({rows, half}, DType::f32);
    for (int t = 0; t < rows; ++t)
      for (int j = 0; j < half; ++j) part.data<float>()[t * half + j] = logits.data<float>()[t * v + s * half + j];
    std::vector<std::int32_t> local;
    for (int t = 0; t < rows; ++t) {
      const int y = tg.data<std::int32_t>()[t];
      local.push_back(y < 0 ? -1 : (y >= s * half && y < (s + 1) * half) ? y - s * half : kernels::kTargetElsewhere);
    }
    shard_tg.push_back(ints(local));
    shard_logits.push_back(part);
    shard_lse.push_back(Tensor::host({rows}, DType::f32));
    shard_loss.push_back(Tensor::host({rows}, DType::f32));
    kernels::cross_entropy_forward(cpu, part, shard_tg[s], shard_loss[s], shard_lse[s]);
  }
  for (int t = 0; t < rows; ++t) {
    const double a = shard_lse[0].data<float>()[t], b = shard_lse[1].data<float>()[t];
    const double l = std::max(a, b) + std::log(std::exp(a - std::max(a, b)) + std::exp(b - std::max(a, b)));
    const double z = (a - shard_loss[0].data<float>()[t]) + (b - shard_loss[1].data<float>()[t]);
    EXPECT_NEAR(l, lse.data<float>()[t], 1e-5);
    if (tg.data<std::int32_t>()[t] >= 0) {
      EXPECT_NEAR(l - z, loss.data<float>()[t], 1e-5) << "row " << t;
    }
  }
  for (int s = 0; s < 2; ++s) {
    Tensor g = Tensor::host({rows, half}, DType::f32);
    kernels::cross_entropy_backward(cpu, shard_logits[s], shard_tg[s], lse, dloss, g);
    for (int t = 0; t < rows; ++t)
      for (int j = 0; j < half; ++j)
        EXPECT_NEAR(g.data<float>()[t * half + j], whole_grad.data<float>()[t * v + s * half + j], 1e-6) << t << "," << j;
  }
}

TEST(CrossEntropyCpu, BadTargetsAndShapesAreUserErrors) {
  const Tensor logits = Tensor::host({2, 10}, DType::f32);
  Tensor loss = Tensor::host({2}, DType::f32), lse = Tensor::host({2}, DType::f32);
  expect_user_error([&] { kernels::cross_entropy_forward(cpu, logits, ints({0, 10}), loss, lse); }, "targets[1] = 10");
  expect_user_error([&] { kernels::cross_entropy_forward(cpu, logits, ints({0, -3}), loss, lse); }, "targets[1] = -3");
  expect_user_error([&] { kernels::cross_entropy_forward(cpu, logits, ints({0}), loss, lse); }, "[2, 10]");
}

TEST(AdamWCpu, ThreeStepsMatchADoubleLoop) {
  const std::int64_t n = 1001;
  Tensor p = test::random_tensor({n}, DType::f32, 14), m = Tensor::host_zeros({n}, DType::f32);
  Tensor v = Tensor::host_zeros({n}, DType::f32), pb = Tensor::host({n}, DType::bf16);
  std::vector<double> rp(n), rm(n, 0), rv(n, 0);
  for (std::int64_t i = 0; i < n; ++i) rp[i] = p.data<float>()[i];
  for (int step = 1; step <= 3; ++step) {
    const Tensor g = test::random_tensor({n}, DType::f32, 15 + step);
    const kernels::AdamWOptions o{.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f,
                                  .step = step, .grad_scale = 0.5f};
    kernels::adamw_step(cpu, p, g, m, v, o, pb);
    for (std::int64_t i = 0; i < n; ++i) {
      const double gi = 0.5 * g.data<float>()[i];
      rp[i] *= 1.0 - 1e-2 * 0.1;
      rm[i] = 0.9 * rm[i] + 0.1 * gi;
      rv[i] = 0.95 * rv[i] + 0.05 * gi * gi;
      rp[i] -= 1e-2 * (rm[i] / (1 - std::pow(0.9, step))) / (std::sqrt(rv[i] / (1 - std::pow(0.95, step))) + 1e-8);
    }
  }
  double e = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    e = std::max(e, std::fabs(p.data<float>()[i] - rp[i]));
    ASSERT_EQ(pb.data<bf16>()[i].bits, to_bf16(p.data<float>()[i]).bits);
  }
  EXPECT_LE(e, 1e-6);  // |p| ~ 1, steps ~ lr: f32 rounding of a few operations per step
}

TEST(AdamWCpu, BadArgumentsAreUserErrors) {
  Tensor p = Tensor::host({8}, DType::f32), g = Tensor::host({7}, DType::f32);
  expect_user_error([&] { kernels::adamw_step(cpu, p, g, p, p, {}); }, "f32[7]");
  expect_user_error([&] { kernels::adamw_step(cpu, p, p, p, p, {.step = 0}); }, "step");
  expect_user_error([&] { kernels::adamw_step(cpu, p, p, p, p, {}, Tensor::host({8}, DType::f32)); }, "param_bf16");
}

TEST(EmbeddingCpu, ForwardGathersAndConvertsRows) {
  const Tensor table = test::random_tensor({10, 6}, DType::f32, 20), ids = ints({3, 3, 0, 9});
  Tensor out = Tensor::host({4, 6}, DType::bf16);
  kernels::embedding_forward(cpu, table, ids, out);
  for (int t = 0; t < 4; ++t)
    for (int j = 0; j < 6; ++j)
      EXPECT_EQ(out.data<bf16>()[t * 6 + j].bits, to_bf16(table.data<float>()[ids.data<std::int32_t>()[t] * 6 + j]).bits);
}

TEST(EmbeddingCpu, BackwardAccumulatesRepeatedIds) {
  const Tensor dout = test::random_tensor({5, 4}, DType::f32, 21), ids = ints({2, 0, 2, 2, 1});
  Tensor dtable = Tensor::host({3, 4}, DType::f32);
  for (int i = 0; i < 12; ++i) dtable.data<float>()[i] = 1.0f;
  kernels::embedding_backward(cpu, dout, ids, dtable);
  for (int v = 0; v < 3; ++v)
    for (int j = 0; j < 4; ++j) {
      double want = 1.0;
      for (int t = 0; t < 5; ++t)
        if (ids.data<std::int32_t>()[t] == v) want += test::value(dout, t * 4 + j);
      EXPECT_NEAR(dtable.data<float>()[v * 4 + j], want, 1e-6);
    }
}

// Id -1 (a row of another vocabulary shard): a zero row forward, skipped backward.
TEST(EmbeddingCpu, RowsOfOtherShardsAreZeroAndGetNoGradient) {
  const Tensor table = test::random_tensor({4, 3}, DType::f32, 22), ids = ints({-1, 2, -1});
  Tensor out = Tensor::host({3, 3}, DType::f32);
  kernels::embedding_forward(cpu, table, ids, out);
  for (int j = 0; j < 3; ++j) {
    EXPECT_EQ(out.data<float>()[j], 0.0f);
    EXPECT_EQ(out.data<float>()[3 + j], table.data<float>()[6 + j]);
    EXPECT_EQ(out.data<float>()[6 + j], 0.0f);
  }
  Tensor dtable = Tensor::host_zeros({4, 3}, DType::f32);
  kernels::embedding_backward(cpu, test::random_tensor({3, 3}, DType::f32, 23), ids, dtable);
  for (int v = 0; v < 4; ++v)
    for (int j = 0; j < 3; ++j) EXPECT_EQ(dtable.data<float>()[v * 3 + j] != 0.0f, v == 2) << v;
}

TEST(EmbeddingCpu, BadIdsAndShapesAreUserErrors) {
  const Tensor table = Tensor::host({10, 6}, DType::f32);
  expect_user_error([&] { kernels::embedding_forward(cpu, table, ints({1, 10}), Tensor::host({2, 6}, DType::f32)); }, "ids[1] = 10");
  expect_user_error([&] { kernels::embedding_forward(cpu, table, ints({1, 2}), Tensor::host({2, 5}, DType::f32)); }, "[2, 5]");
  expect_user_error([&] { kernels::embedding_backward(cpu, Tensor::host({2, 6}, DType::f32), ints({0, -2}), Tensor::host({10, 6}, DType::f32)); }, "ids[1] = -2");
}

TEST(NnCpu, ZeroTokensAreANoOp) {
  const Tensor x = Tensor::host({0, 8}, DType::f32), none = Tensor::host({0}, DType::f32), noids = ints({});
  Tensor dw = Tensor::host_zeros({8}, DType::f32);
  kernels::rmsnorm_forward(cpu, x, dw, 1e-6f, x, none);
  kernels::rmsnorm_backward(cpu, x, x, dw, none, x, dw);
  kernels::swiglu_forward(cpu, x, Tensor::host({0, 4}, DType::f32));
  kernels::cross_entropy_forward(cpu, x, noids, none, none);
  kernels::embedding_backward(cpu, x, noids, Tensor::host_zeros({3, 8}, DType::f32));
  EXPECT_EQ(test::max_error(dw, Tensor::host_zeros({8}, DType::f32)), 0.0);
}
