// Grouped-query attention layer (src/model/gqa.hpp): forward against the Llama / Qwen2 / Qwen3 definitions
// written out with plain loops in double (llama3 RoPE frequencies computed independently, explicit softmax,
// K/V head h / G for query head h), finite-difference gradients of the input and of every parameter, and
// gradient accumulation over micro-batches. Every architecture runs with and without segment ids.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numbers>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/test_util.hpp"
#include "model/gqa.hpp"
#include "model/layer_checks.hpp"
#include "support/tiny_model.hpp"

using namespace r1;
using kernels::Context;

namespace {
const Context cpu = Context::cpu();
const std::string kPrefix = "layers.1.attn";

struct Case {
  Arch arch;
  bool segments;
};
std::string case_name(const testing::TestParamInfo<Case>& info) {
  return std::string(choice_word(info.param.arch)) + (info.param.segments ? "Packed" : "Plain");
}
void PrintTo(const Case& c, std::ostream* os) { *os << choice_word(c.arch) << (c.segments ? ", segment ids" : ""); }

// 6 query heads over 2 K/V heads of 8 (head_dim apart from dim / n_heads = 4); llama with llama3 RoPE
// scaling whose bands fall inside the head (original context 8 tokens, positions up to 16).
ModelConfig tiny_config(const Case& k) {
  ModelConfig c = test::tiny_model({.dim = 24, .n_heads = 6, .max_seq_len = 32});
  c.arch = k.arch;
  c.dense = true;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  c.rope_theta = k.arch == Arch::llama ? 500 : 10000;
  c.norm_eps = 1e-6;
  if (k.arch == Arch::llama) {
    c.rope_type = RopeType::llama3;
    c.rope_factor = 8;
    c.original_seq_len = 8;
    c.low_freq_factor = 1;
    c.high_freq_factor = 4;
  }
  return c;
}

// The layer, its parameters (random; norms around 1, biases nonzero) and one batch of B = 2 sequences of S = 6.
struct LayerCase {
  explicit LayerCase(const Case& k)
      : cfg(tiny_config(k)), params(cpu, DType::f32), rope(gqa_rope_tables(cpu, cfg)), layer(cfg, params, kPrefix, rope) {
    params.initialize(7, 0.2);
    std::uint32_t stream = 100;
    for (const auto& p : params.all())
      if (p->init != Init::normal) {
        const Tensor r = test::random_tensor(p->shape, DType::f32, stream++, 0.3f);
        for (std::int64_t i = 0; i < r.numel(); ++i)
          p->master.data<float>()[i] = (p->init == Init::ones ? 1.0f : 0.0f) + r.data<float>()[i];
      }
    b = test::layer_batch(k.segments);
    const std::int64_t t = b.tokens();
    x = test::random_tensor({t, cfg.dim}, DType::f32, 1);
    w = test::random_tensor({t, cfg.dim}, DType::f32, 2);
  }
  ModelConfig cfg;
  ParamStore params;
  kernels::RopeTables rope;
  GqaAttention layer;
  BatchShape b;
  Tensor x, w;
};

// ---- The reference, in double from the master weights ----

const float* master(const ParamStore& ps, const std::string& name) { return ps.get(kPrefix + "." + name).master.data<float>(); }
// y = W x (+ bias), W [rows, cols].
std::vector<double> linear(const ParamStore& ps, const std::string& name, const std::vector<double>& x,
                           const float* bias) {
  const Param& p = ps.get(kPrefix + "." + name);
  const std::int64_t rows = p.shape[0], cols = p.shape[1];
  std::vector<double> y(static_cast<std::size_t>(rows), 0.0);
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t c = 0; c < cols; ++c) y[r] += static_cast<double>(p.master.data<float>()[r * cols + c]) * x[c];
    if (bias != nullptr) y[r] += bias[r];
  }
  return y;
}
// transformers' _compute_llama3_parameters, written over wavelengths.
std::vector<double> inv_freq(const ModelConfig& c) {
  const std::int64_t d = c.gqa_head_dim();
  std::vector<double> f(static_cast<std::size_t>(d / 2));
  for (std::int64_t i = 0; i < d / 2; ++i) f[i] = 1.0 / std::pow(c.rope_theta, 2.0 * i / d);
  if (c.rope_type != RopeType::llama3) return f;
  for (double& v : f) {
    const double wavelen = 2 * std::numbers::pi / v, low = c.original_seq_len / c.low_freq_factor;
    const double high = c.original_seq_len / c.high_freq_factor;
    const double smooth = (c.original_seq_len / wavelen - c.low_freq_factor) / (c.high_freq_factor - c.low_freq_factor);
    v = wavelen < high ? v : wavelen > low ? v / c.rope_factor : (1 - smooth) * v / c.rope_factor + smooth * v;
  }
  return f;
}
// One head of d features: optional RMSNorm, then RoPE on interleaved pairs.
void norm_and_rotate(double* v, std::int64_t d, const float* norm, double eps, const std::vector<double>& freq, int pos) {
  if (norm != nullptr) {
    double ms = 0;
    for (std::int64_t i = 0; i < d; ++i) ms += v[i] * v[i] / static_cast<double>(d);
    for (std::int64_t i = 0; i < d; ++i) v[i] = v[i] / std::sqrt(ms + eps) * norm[i];
  }
  for (std::size_t i = 0; i < freq.size(); ++i) {
    const double a = pos * freq[i], x0 = v[2 * i], x1 = v[2 * i + 1];
    v[2 * i] = x0 * std::cos(a) - x1 * std::sin(a);
    v[2 * i + 1] = x0 * std::sin(a) + x1 * std::cos(a);
  }
}

struct Qkv {
  std::vector<std::vector<double>> q, k, v;
};
Qkv reference_qkv(const LayerCase& s) {
  const ModelConfig& c = s.cfg;
  const std::int64_t T = s.b.tokens(), H = c.n_heads, K = c.kv_heads(), d = c.gqa_head_dim();
  const bool bias = c.arch == Arch::qwen2, qk_norm = c.arch == Arch::qwen3;
  const auto freq = inv_freq(c);
  Qkv r{std::vector<std::vector<double>>(T), std::vector<std::vector<double>>(T), std::vector<std::vector<double>>(T)};
  for (std::int64_t t = 0; t < T; ++t) {
    std::vector<double> x(c.dim);
    for (std::int64_t i = 0; i < c.dim; ++i) x[i] = s.x.data<float>()[t * c.dim + i];
    const int pos = s.b.positions.data<std::int32_t>()[t];
    r.q[t] = linear(s.params, "q_proj", x, bias ? master(s.params, "q_bias") : nullptr);
    r.k[t] = linear(s.params, "k_proj", x, bias ? master(s.params, "k_bias") : nullptr);
    r.v[t] = linear(s.params, "v_proj", x, bias ? master(s.params, "v_bias") : nullptr);
    for (std::int64_t h = 0; h < H; ++h)
      norm_and_rotate(&r.q[t][h * d], d, qk_norm ? master(s.params, "q_norm") : nullptr, c.norm_eps, freq, pos);
    for (std::int64_t h = 0; h < K; ++h)
      norm_and_rotate(&r.k[t][h * d], d, qk_norm ? master(s.params, "k_norm") : nullptr, c.norm_eps, freq, pos);
  }
  return r;
}

std::vector<double> reference_forward(const LayerCase& s) {
  const ModelConfig& c = s.cfg;
  const std::int64_t B = s.b.batch, S = s.b.seq, H = c.n_heads, G = H / c.kv_heads(), d = c.gqa_head_dim();
  const Qkv r = reference_qkv(s);
  const double scale = 1 / std::sqrt(static_cast<double>(d));
  const auto seg = [&](std::int64_t t) { return s.b.segment_ids.defined() ? s.b.segment_ids.data<std::int32_t>()[t] : 0; };
  std::vector<double> out(B * S * c.dim, 0.0);
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t i = 0; i < S; ++i) {
      const std::int64_t ti = b * S + i;
      std::vector<double> o(H * d, 0.0);
      for (std::int64_t h = 0; h < H; ++h) {
        const std::int64_t g = h / G;  // the K/V head of query head h
        std::vector<double> sc(S, -std::numeric_limits<double>::infinity());
        double mx = sc[0];
        for (std::int64_t j = 0; j <= i; ++j) {
          const std::int64_t tj = b * S + j;
          if (seg(tj) != seg(ti)) continue;
          double dot = 0;
          for (std::int64_t e = 0; e < d; ++e) dot += r.q[ti][h * d + e] * r.k[tj][g * d + e];
          sc[j] = scale * dot;
          mx = std::max(mx, sc[j]);
        }
        double sum = 0;
        for (std::int64_t j = 0; j <= i; ++j) sum += std::exp(sc[j] - mx);
        for (std::int64_t j = 0; j <= i; ++j)
          for (std::int64_t e = 0; e < d; ++e) o[h * d + e] += std::exp(sc[j] - mx) / sum * r.v[b * S + j][g * d + e];
      }
      const auto y = linear(s.params, "o_proj", o, nullptr);
      for (std::int64_t e = 0; e < c.dim; ++e) out[ti * c.dim + e] = y[e];
    }
  return out;
}

class GqaTest : public testing::TestWithParam<Case> {};
}  // namespace

TEST_P(GqaTest, RegistersTheDocumentedParameters) {
  LayerCase s(GetParam());
  const auto& c = s.cfg;
  const std::int64_t q = c.n_heads * c.gqa_head_dim(), kv = c.kv_heads() * c.gqa_head_dim();
  std::vector<std::tuple<std::string, Shape, Init>> want = {{"q_proj", Shape{q, c.dim}, Init::normal},
                                                            {"k_proj", Shape{kv, c.dim}, Init::normal},
                                                            {"v_proj", Shape{kv, c.dim}, Init::normal},
                                                            {"o_proj", Shape{c.dim, q}, Init::normal}};
  if (c.arch == Arch::qwen2)
    for (auto [name, n] : {std::pair<const char*, std::int64_t>{"q_bias", q}, {"k_bias", kv}, {"v_bias", kv}})
      want.emplace_back(name, Shape{n}, Init::zeros);
  if (c.arch == Arch::qwen3)
    for (const char* name : {"q_norm", "k_norm"}) want.emplace_back(name, Shape{c.gqa_head_dim()}, Init::ones);
  ASSERT_EQ(s.params.all().size(), want.size());
  for (const auto& [name, shape, init] : want) {
    const Param& p = s.params.get(kPrefix + "." + name);
    EXPECT_EQ(p.shape, shape) << name;
    EXPECT_EQ(p.init, init) << name;
    EXPECT_EQ(p.decay, init == Init::normal) << name;
  }
}

TEST_P(GqaTest, ForwardMatchesTheDefinition) {
  LayerCase s(GetParam());
  EXPECT_NEAR(s.layer.softmax_scale(), 1 / std::sqrt(8.0), 1e-7);
  test::expect_forward_matches(s, reference_forward(s));
}

TEST_P(GqaTest, GradientsMatchFiniteDifferences) {
  LayerCase s(GetParam());
  test::expect_gradients_match_finite_differences(s);
}

TEST_P(GqaTest, ParameterGradientsAccumulateAndDxIsOverwritten) {
  LayerCase s(GetParam());
  test::expect_gradients_accumulate_and_dx_overwritten(s);
}

TEST_P(GqaTest, RejectsInputOfTheWrongShape) {
  LayerCase s(GetParam());
  test::expect_wrong_input_shape_refused(s);
}

INSTANTIATE_TEST_SUITE_P(Gqa, GqaTest,
                         testing::Values(Case{Arch::llama, false}, Case{Arch::llama, true}, Case{Arch::qwen2, false},
                                         Case{Arch::qwen2, true}, Case{Arch::qwen3, false}, Case{Arch::qwen3, true}),
                         case_name);

// K/V heads that do not divide the query heads are refused when the layer is built.
TEST(GqaLayer, RejectsKvHeadsThatDoNotDivideHeads) {
  ModelConfig c = tiny_config({Arch::llama, false});
  c.n_kv_heads = 4;
  ParamStore params(cpu, DType::f32);
  const auto rope = gqa_rope_tables(cpu, c);
  EXPECT_THROW(GqaAttention(c, params, kPrefix, rope), Error);
}
