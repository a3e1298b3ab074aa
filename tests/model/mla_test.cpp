// MLA attention layer (src/model/mla.hpp): forward against the DeepSeek-V3 definition written out with
// plain loops in double (independent RoPE/YaRN frequencies, explicit softmax), finite-difference
// gradients of the input and of every parameter, and gradient accumulation over micro-batches.
// Every case runs with q_lora_rank 0 and > 0, with and without YaRN, with and without segment ids.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numbers>
#include <string>
#include <vector>

#include "kernels/test_util.hpp"
#include "model/layer_checks.hpp"
#include "model/mla.hpp"
#include "support/tiny_model.hpp"

using namespace r1;
using kernels::Context;

namespace {
const Context cpu = Context::cpu();
const std::string kPrefix = "layers.3.attn";

struct Case {
  std::int64_t q_rank;
  bool yarn;
  bool segments;
};
std::string case_name(const testing::TestParamInfo<Case>& info) {
  return std::string(info.param.q_rank ? "QLora" : "QProj") + (info.param.yarn ? "Yarn" : "Rope") +
         (info.param.segments ? "Packed" : "Plain");
}
void PrintTo(const Case& c, std::ostream* os) {
  *os << "q_lora_rank " << c.q_rank << (c.yarn ? ", YaRN" : ", plain RoPE") << (c.segments ? ", segment ids" : "");
}

ModelConfig tiny_config(const Case& k) {
  ModelConfig c = test::tiny_model({.dim = 32, .q_lora_rank = k.q_rank, .kv_lora_rank = 16, .max_seq_len = 32});
  c.rope_theta = 10000;
  c.norm_eps = 1e-6;
  if (k.yarn) {  // max_seq_len > original_seq_len turns YaRN on
    c.original_seq_len = 8;
    c.rope_factor = 4;
    c.mscale = 0.8;
  }
  return c;
}

// The layer, its parameters (random, norms around 1) and one batch of B = 2 sequences of S = 6 tokens.
struct LayerCase {
  explicit LayerCase(const Case& k)
      : cfg(tiny_config(k)), params(cpu, DType::f32), rope(mla_rope_tables(cpu, cfg)), layer(cfg, params, kPrefix, rope) {
    params.initialize(7, 0.2);
    std::uint32_t stream = 100;
    for (const auto& p : params.all())
      if (p->init == Init::ones) {
        const Tensor r = test::random_tensor(p->shape, DType::f32, stream++, 0.3f);
        for (std::int64_t i = 0; i < r.numel(); ++i) p->master.data<float>()[i] = 1.0f + r.data<float>()[i];
      }
    b = test::layer_batch(k.segments);
    const std::int64_t t = b.tokens();
    x = test::random_tensor({t, cfg.dim}, DType::f32, 1);
    w = test::random_tensor({t, cfg.dim}, DType::f32, 2);
  }
  ModelConfig cfg;
  ParamStore params;
  kernels::RopeTables rope;
  MlaAttention layer;
  BatchShape b;
  Tensor x, w;
};

// ---- The reference, in double from the master weights ----

struct Mat {  // a row-major view of a master weight
  const float* p;
  std::int64_t rows, cols;
  double operator()(std::int64_t r, std::int64_t c) const { return p[r * cols + c]; }
};
Mat mat(const ParamStore& ps, const std::string& name) {
  const Param& p = ps.get(kPrefix + "." + name);
  return {p.master.data<float>(), p.shape[0], p.shape.rank() == 2 ? p.shape[1] : 1};
}
std::vector<double> matvec(const Mat& w, const std::vector<double>& x) {
  std::vector<double> y(static_cast<std::size_t>(w.rows), 0.0);
  for (std::int64_t r = 0; r < w.rows; ++r)
    for (std::int64_t c = 0; c < w.cols; ++c) y[r] += w(r, c) * x[c];
  return y;
}
std::vector<double> rmsnorm(const std::vector<double>& x, const Mat& w, double eps) {
  double ms = 0;
  for (double v : x) ms += v * v / static_cast<double>(x.size());
  std::vector<double> y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) y[i] = x[i] / std::sqrt(ms + eps) * w.p[i];
  return y;
}
// DeepSeek-V3's precompute_freqs_cis: base frequencies, with YaRN's ramp when max_seq_len > original_seq_len.
std::vector<double> inv_freq(const ModelConfig& c) {
  const std::int64_t dim = c.qk_rope_head_dim;
  std::vector<double> f(static_cast<std::size_t>(dim / 2));
  for (std::int64_t i = 0; i < dim / 2; ++i) f[i] = 1.0 / std::pow(c.rope_theta, 2.0 * i / dim);
  if (c.max_seq_len > c.original_seq_len) {
    const auto corr = [&](double rot) {
      return dim * std::log(c.original_seq_len / (rot * 2 * std::numbers::pi)) / (2 * std::log(c.rope_theta));
    };
    const double low = std::max(std::floor(corr(c.beta_fast)), 0.0);
    double high = std::min(std::ceil(corr(c.beta_slow)), static_cast<double>(dim - 1));
    if (low == high) high += 0.001;
    for (std::int64_t i = 0; i < dim / 2; ++i) {
      const double smooth = 1 - std::clamp((i - low) / (high - low), 0.0, 1.0);
      f[i] = f[i] / c.rope_factor * (1 - smooth) + f[i] * smooth;
    }
  }
  return f;
}
void rotate(double* v, const std::vector<double>& freq, int pos) {
  for (std::size_t i = 0; i < freq.size(); ++i) {
    const double a = pos * freq[i], x0 = v[2 * i], x1 = v[2 * i + 1];
    v[2 * i] = x0 * std::cos(a) - x1 * std::sin(a);
    v[2 * i + 1] = x0 * std::sin(a) + x1 * std::cos(a);
  }
}

std::vector<double> reference_forward(const LayerCase& s) {
  const ModelConfig& c = s.cfg;
  const std::int64_t B = s.b.batch, S = s.b.seq, T = B * S, H = c.n_heads, dn = c.qk_nope_head_dim,
                     dr = c.qk_rope_head_dim, dv = c.v_head_dim, dqk = dn + dr, R = c.kv_lora_rank;
  const auto freq = inv_freq(c);
  const double m = c.max_seq_len > c.original_seq_len ? 0.1 * c.mscale * std::log(c.rope_factor) + 1 : 1.0;
  const double scale = m * m / std::sqrt(static_cast<double>(dqk));
  std::vector<std::vector<double>> q(T), k(T), v(T);
  for (std::int64_t t = 0; t < T; ++t) {
    std::vector<double> x(c.dim);
    for (std::int64_t i = 0; i < c.dim; ++i) x[i] = s.x.data<float>()[t * c.dim + i];
    const int pos = s.b.positions.data<std::int32_t>()[t];
    q[t] = c.q_lora_rank == 0 ? matvec(mat(s.params, "q_proj"), x)
                              : matvec(mat(s.params, "q_b_proj"),
                                       rmsnorm(matvec(mat(s.params, "q_a_proj"), x), mat(s.params, "q_a_norm"), c.norm_eps));
    const auto kv_a = matvec(mat(s.params, "kv_a_proj"), x);
    std::vector<double> k_pe(kv_a.begin() + R, kv_a.end());
    rotate(k_pe.data(), freq, pos);
    const auto kv = matvec(mat(s.params, "kv_b_proj"),
                           rmsnorm(std::vector<double>(kv_a.begin(), kv_a.begin() + R), mat(s.params, "kv_a_norm"), c.norm_eps));
    k[t].resize(H * dqk);
    v[t].resize(H * dv);
    for (std::int64_t h = 0; h < H; ++h) {
      rotate(&q[t][h * dqk + dn], freq, pos);
      for (std::int64_t i = 0; i < dn; ++i) k[t][h * dqk + i] = kv[h * (dn + dv) + i];
      for (std::int64_t i = 0; i < dr; ++i) k[t][h * dqk + dn + i] = k_pe[i];
      for (std::int64_t i = 0; i < dv; ++i) v[t][h * dv + i] = kv[h * (dn + dv) + dn + i];
    }
  }
  const auto seg = [&](std::int64_t t) { return s.b.segment_ids.defined() ? s.b.segment_ids.data<std::int32_t>()[t] : 0; };
  std::vector<double> out(T * c.dim, 0.0);
  const Mat wo = mat(s.params, "o_proj");
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t i = 0; i < S; ++i) {
      const std::int64_t ti = b * S + i;
      std::vector<double> o(H * dv, 0.0);
      for (std::int64_t h = 0; h < H; ++h) {
        std::vector<double> sc(S, -std::numeric_limits<double>::infinity());
        double mx = sc[0];
        for (std::int64_t j = 0; j <= i; ++j) {
          const std::int64_t tj = b * S + j;
          if (seg(tj) != seg(ti)) continue;
          double dot = 0;
          for (std::int64_t e = 0; e < dqk; ++e) dot += q[ti][h * dqk + e] * k[tj][h * dqk + e];
          sc[j] = scale * dot;
          mx = std::max(mx, sc[j]);
        }
        double sum = 0;
        for (std::int64_t j = 0; j <= i; ++j) sum += std::exp(sc[j] - mx);
        for (std::int64_t j = 0; j <= i; ++j)
          for (std::int64_t e = 0; e < dv; ++e) o[h * dv + e] += std::exp(sc[j] - mx) / sum * v[b * S + j][h * dv + e];
      }
      const auto y = matvec(wo, o);
      for (std::int64_t d = 0; d < c.dim; ++d) out[ti * c.dim + d] = y[d];
    }
  return out;
}

class MlaTest : public testing::TestWithParam<Case> {};
}  // namespace

TEST_P(MlaTest, RegistersTheDocumentedParameters) {
  LayerCase s(GetParam());
  const auto& c = s.cfg;
  const std::int64_t qrows = c.n_heads * c.qk_head_dim();
  std::vector<std::pair<std::string, Shape>> want;
  if (c.q_lora_rank == 0) {
    want.emplace_back("q_proj", Shape{qrows, c.dim});
  } else {
    want.emplace_back("q_a_proj", Shape{c.q_lora_rank, c.dim});
    want.emplace_back("q_a_norm", Shape{c.q_lora_rank});
    want.emplace_back("q_b_proj", Shape{qrows, c.q_lora_rank});
  }
  want.emplace_back("kv_a_proj", Shape{c.kv_lora_rank + c.qk_rope_head_dim, c.dim});
  want.emplace_back("kv_a_norm", Shape{c.kv_lora_rank});
  want.emplace_back("kv_b_proj", Shape{c.n_heads * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank});
  want.emplace_back("o_proj", Shape{c.dim, c.n_heads * c.v_head_dim});
  ASSERT_EQ(s.params.all().size(), want.size());
  for (const auto& [name, shape] : want) {
    const Param& p = s.params.get(kPrefix + "." + name);
    EXPECT_EQ(p.shape, shape) << name;
    const bool norm = name.find("norm") != std::string::npos;
    EXPECT_EQ(p.init, norm ? Init::ones : Init::normal) << name;
    EXPECT_EQ(p.decay, !norm) << name;
  }
}

TEST_P(MlaTest, ForwardMatchesTheDefinition) {
  LayerCase s(GetParam());
  const double m = GetParam().yarn ? 0.1 * 0.8 * std::log(4.0) + 1 : 1.0;
  EXPECT_NEAR(s.layer.softmax_scale(), m * m / std::sqrt(12.0), 1e-6);
  test::expect_forward_matches(s, reference_forward(s));
}

TEST_P(MlaTest, GradientsMatchFiniteDifferences) {
  LayerCase s(GetParam());
  test::expect_gradients_match_finite_differences(s);
}

TEST_P(MlaTest, ParameterGradientsAccumulateAndDxIsOverwritten) {
  LayerCase s(GetParam());
  test::expect_gradients_accumulate_and_dx_overwritten(s);
}

TEST_P(MlaTest, RejectsInputOfTheWrongShape) {
  LayerCase s(GetParam());
  test::expect_wrong_input_shape_refused(s);
}

INSTANTIATE_TEST_SUITE_P(Mla, MlaTest,
                         testing::Values(Case{0, false, false}, Case{0, true, false}, Case{0, false, true},
                                         Case{0, true, true}, Case{12, false, false}, Case{12, true, false},
                                         Case{12, false, true}, Case{12, true, true}),
                         case_name);
