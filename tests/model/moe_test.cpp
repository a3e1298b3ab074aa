// The SwiGLU MLP and the MoE FFN layer on the CPU in f32: forward against a naive loop over experts in
// double (the slow reference path), finite-difference gradients of the input and every parameter,
// gradient accumulation, and the auxiliary-loss-free bias feedback.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "kernels/elementwise.hpp"
#include "kernels/fp8.hpp"
#include "kernels/gradcheck.hpp"
#include "kernels/moe_router.hpp"
#include "kernels/swiglu.hpp"
#include "kernels/test_util.hpp"
#include "model/linear.hpp"
#include "model/mlp.hpp"
#include "model/moe.hpp"
#include "support/tiny_model.hpp"

using namespace r1;
using kernels::Context;

namespace {
const Context kCpu = Context::cpu();
const std::string kPrefix = "layers.3.moe";

double dot(const Tensor& w, const Tensor& y) {
  double s = 0;
  for (std::int64_t i = 0; i < y.numel(); ++i) s += test::value(w, i) * test::value(y, i);
  return s;
}
double silu(double g) { return g / (1.0 + std::exp(-g)); }

// out[t] = down silu(gate x_t) * (up x_t), with gate_up [2I, D] (gate rows first) and down [D, I].
std::vector<double> ref_ffn(const float* gate_up, const float* down, std::int64_t d, std::int64_t inter,
                            const float* x) {
  std::vector<double> h(inter), y(d, 0.0);
  for (std::int64_t r = 0; r < inter; ++r) {
    double g = 0, u = 0;
    for (std::int64_t c = 0; c < d; ++c) {
      g += static_cast<double>(gate_up[r * d + c]) * x[c];
      u += static_cast<double>(gate_up[(inter + r) * d + c]) * x[c];
    }
    h[r] = silu(g) * u;
  }
  for (std::int64_t o = 0; o < d; ++o)
    for (std::int64_t r = 0; r < inter; ++r) y[o] += static_cast<double>(down[o * inter + r]) * h[r];
  return y;
}

ModelConfig tiny_moe(RouterScore score, std::int64_t n_shared) {
  ModelConfig c = test::tiny_model({.dim = 16, .n_routed_experts = 8});
  c.n_shared_experts = n_shared;
  c.score_func = score;
  if (score == RouterScore::sigmoid) {  // DeepSeek-V3 style: groups, normalised gates, scaled
    c.n_expert_groups = 2;
    c.n_limited_groups = 1;
    c.route_scale = 2.5;
    c.normalize_gates = true;
  } else {  // V2-Lite style: raw softmax probabilities
    c.n_expert_groups = 1;
    c.n_limited_groups = 1;
    c.route_scale = 1.0;
    c.normalize_gates = false;
  }
  c.seq_aux_alpha = 0.05;  // large enough that its gradient shows next to the output's
  return c;
}

// Parameters and layer of one test; weights N(0, 0.3) so that every term is O(1) at D = 16.
struct Layer {
  ModelConfig c;
  ParamStore store{kCpu, DType::f32};
  MoeFfn moe;
  explicit Layer(const ModelConfig& cfg, float bias_std = 0.0f) : c(cfg), moe(c, store, kPrefix) {
    store.initialize(77, 0.3);
    if (bias_std > 0) {
      const Tensor r = test::random_tensor({c.n_routed_experts}, DType::f32, 900, bias_std);
      copy(param("router_bias").master, r);
    }
  }
  Param& param(const std::string& name) { return store.get(kPrefix + "." + name); }
};

BatchShape batch_of(std::int64_t b, std::int64_t s) {
  BatchShape shape;
  shape.batch = b;
  shape.seq = s;
  return shape;
}

// One token of the reference router: scores, biased group-limited top-k, gates (all in double).
struct RefRoute {
  std::vector<double> scores;
  std::vector<int> idx;  // by descending biased score
  std::vector<double> gates;
};
RefRoute ref_route(const ModelConfig& c, const std::vector<double>& logits, const float* bias) {
  const int e_n = static_cast<int>(c.n_routed_experts), k = static_cast<int>(c.n_activated_experts);
  RefRoute r;
  r.scores.resize(e_n);
  if (c.score_func == RouterScore::sigmoid) {
    for (int e = 0; e < e_n; ++e) r.scores[e] = 1.0 / (1.0 + std::exp(-logits[e]));
  } else {
    const double m = *std::max_element(logits.begin(), logits.end());
    double z = 0;
    for (int e = 0; e < e_n; ++e) z += r.scores[e] = std::exp(logits[e] - m);
    for (double& s : r.scores) s /= z;
  }
  std::vector<double> biased(e_n);
  for (int e = 0; e < e_n; ++e) biased[e] = r.scores[e] + (bias ? bias[e] : 0.0f);
  const int n_groups = static_cast<int>(c.n_expert_groups), gsize = e_n / n_groups;
  std::vector<std::pair<double, int>> groups;
  for (int g = 0; g < n_groups; ++g) {
    std::vector<double> v(biased.begin() + g * gsize, biased.begin() + (g + 1) * gsize);
    std::sort(v.rbegin(), v.rend());
    groups.push_back({-(v[0] + (gsize >= 2 ? v[1] : 0.0)), g});
  }
  std::sort(groups.begin(), groups.end());
  std::vector<std::pair<double, int>> cand;
  for (int i = 0; i < c.n_limited_groups; ++i)
    for (int e = groups[i].second * gsize; e < (groups[i].second + 1) * gsize; ++e) cand.push_back({-biased[e], e});
  std::sort(cand.begin(), cand.end());
  double sum = 0;
  for (int j = 0; j < k; ++j) {
    r.idx.push_back(cand[j].second);
    sum += r.scores[cand[j].second];
  }
  for (int j = 0; j < k; ++j)
    r.gates.push_back(c.route_scale * r.scores[r.idx[j]] / (c.normalize_gates ? sum : 1.0));
  return r;
}

// The whole layer the slow way: per token, route, run each selected expert's FFN, weight, add the shared
// experts. Also the balance loss and the expert counts.
struct RefMoe {
  std::vector<double> out;
  std::vector<std::vector<int>> idx;
  double balance_loss = 0;
  std::vector<int> counts;
};
RefMoe ref_moe(Layer& l, const BatchShape& b, const Tensor& x, bool use_bias = true) {
  const ModelConfig& c = l.c;
  const std::int64_t t_n = x.dim(0), d = c.dim, e_n = c.n_routed_experts, k = c.n_activated_experts;
  const std::int64_t inter = c.moe_inter_dim, sh = c.moe_inter_dim * c.n_shared_experts;
  const float* wr = l.param("router").master.data<float>();
  const float* bias = use_bias ? l.param("router_bias").master.data<float>() : nullptr;
  const float* gu = l.param("experts.gate_up").master.data<float>();
  const float* dn = l.param("experts.down").master.data<float>();
  RefMoe r{std::vector<double>(t_n * d, 0.0), {}, 0.0, std::vector<int>(e_n, 0)};
  std::vector<std::vector<double>> norm_scores;
  for (std::int64_t t = 0; t < t_n; ++t) {
    const float* xt = x.data<float>() + t * d;
    std::vector<double> logits(e_n, 0.0);
    for (std::int64_t e = 0; e < e_n; ++e)
      for (std::int64_t i = 0; i < d; ++i) logits[e] += static_cast<double>(wr[e * d + i]) * xt[i];
    const RefRoute rt = ref_route(c, logits, bias);
    r.idx.push_back(rt.idx);
    for (std::int64_t j = 0; j < k; ++j) {
      const int e = rt.idx[j];
      ++r.counts[e];
      const auto y = ref_ffn(gu + e * 2 * inter * d, dn + e * d * inter, d, inter, xt);
      for (std::int64_t o = 0; o < d; ++o) r.out[t * d + o] += rt.gates[j] * y[o];
    }
    if (sh > 0) {
      const auto y = ref_ffn(l.param("shared.gate_up").master.data<float>(),
                             l.param("shared.down").master.data<float>(), d, sh, xt);
      for (std::int64_t o = 0; o < d; ++o) r.out[t * d + o] += y[o];
    }
    const double z = std::accumulate(rt.scores.begin(), rt.scores.end(), 0.0);
    std::vector<double> sn(rt.scores);
    for (double& v : sn) v /= z;
    norm_scores.push_back(sn);
  }
  // L = alpha * mean over sequences of sum_i f_i P_i, f_i = E / (k S) count_i, P_i = mean_t s'_i.
  for (std::int64_t q = 0; q < b.batch; ++q) {
    for (std::int64_t e = 0; e < e_n; ++e) {
      double cnt = 0, p = 0;
      for (std::int64_t s = 0; s < b.seq; ++s) {
        const std::int64_t t = q * b.seq + s;
        cnt += std::count(r.idx[t].begin(), r.idx[t].end(), static_cast<int>(e));
        p += norm_scores[t][e];
      }
      r.balance_loss += c.seq_aux_alpha * (e_n * cnt / (k * b.seq)) * (p / b.seq) / b.batch;
    }
  }
  return r;
}

std::vector<std::int32_t> selection(const Tensor& idx) {
  const std::int32_t* p = idx.data<std::int32_t>();
  return {p, p + idx.numel()};
}

double max_load_ratio(const Tensor& counts) {
  const std::int32_t* p = counts.data<std::int32_t>();
  const double mean = std::accumulate(p, p + counts.numel(), 0.0) / counts.numel();
  return *std::max_element(p, p + counts.numel()) / mean;
}
}  // namespace

TEST(DenseMlp, ForwardMatchesNaiveLoops) {
  ParamStore store(kCpu, DType::f32);
  const std::int64_t d = 16, inter = 8, t_n = 12;
  DenseMlp mlp(store, "layers.0.mlp", d, inter);
  store.initialize(5, 0.3);
  EXPECT_EQ(store.get("layers.0.mlp.gate_up").shape, (Shape{2 * inter, d}));
  EXPECT_EQ(store.get("layers.0.mlp.down").shape, (Shape{d, inter}));
  const Tensor x = test::random_tensor({t_n, d}, DType::f32, 1);
  Tensor out = Tensor::host({t_n, d}, DType::f32);
  mlp.forward(kCpu, x, out);
  double err = 0;
  for (std::int64_t t = 0; t < t_n; ++t) {
    const auto y = ref_ffn(store.get("layers.0.mlp.gate_up").master.data<float>(),
                           store.get("layers.0.mlp.down").master.data<float>(), d, inter, x.data<float>() + t * d);
    for (std::int64_t o = 0; o < d; ++o) err = std::max(err, std::fabs(out.data<float>()[t * d + o] - y[o]));
  }
  EXPECT_LT(err, 1e-5);
}

// Precision fp8: SwiGLU writes the down projection's 1 x 128 tiles in its own pass, and the down projection
// from them is bit for bit the one that quantises h itself; the tiles are not kept for the backward.
TEST(DenseMlp, Fp8DownProjectionFromSwigluTilesIsTheSameBits) {
  for (const bool pow2 : {false, true}) {
    ParamStore store(kCpu, DType::f32, /*fp8=*/true, pow2);
    const std::int64_t d = 16, inter = 8, t_n = 12;
    const DenseMlp mlp(store, "layers.0.mlp", d, inter);
    store.initialize(5, 0.3);
    const Tensor x = test::random_tensor({t_n, d}, DType::f32, 2);
    DenseMlp::Saved s = mlp.hidden(kCpu, x);
    ASSERT_TRUE(s.h_fp8.has_value());
    Tensor want = Tensor::host({t_n, d}, DType::f32), got = Tensor::host({t_n, d}, DType::f32);
    linear_forward(kCpu, s.h, store.get("layers.0.mlp.down"), want);
    mlp.project(kCpu, s, got, /*accumulate=*/false);
    EXPECT_EQ(test::max_error(got, want), 0.0) << (pow2 ? "pow2" : "fp32") << " scales";
    EXPECT_FALSE(s.h_fp8.has_value());
  }
}

TEST(DenseMlp, BackwardMatchesFiniteDifferences) {
  ParamStore store(kCpu, DType::f32);
  const std::int64_t d = 16, inter = 8, t_n = 12;
  DenseMlp mlp(store, "layers.0.mlp", d, inter);
  store.initialize(6, 0.3);
  const Tensor x = test::random_tensor({t_n, d}, DType::f32, 2);
  const Tensor w = test::random_tensor({t_n, d}, DType::f32, 3);
  Tensor out = Tensor::host({t_n, d}, DType::f32), dx = Tensor::host({t_n, d}, DType::f32);
  const auto saved = mlp.forward(kCpu, x, out);
  mlp.backward(kCpu, saved, w, dx);
  const auto loss = [&] {
    mlp.forward(kCpu, x, out);
    return dot(w, out);
  };
  EXPECT_LT(test::gradcheck(loss, x, dx, 1e-2).relative(), 2e-3) << "dx";
  for (const char* name : {"layers.0.mlp.gate_up", "layers.0.mlp.down"}) {
    const Param& p = store.get(name);
    EXPECT_LT(test::gradcheck(loss, p.master, p.grad, 1e-2, 3).relative(), 2e-3) << name;
  }
}

TEST(MoeFfn, RegistersTheDocumentedParameters) {
  Layer l(tiny_moe(RouterScore::sigmoid, 2));
  EXPECT_EQ(l.param("router").shape, (Shape{8, 16}));
  EXPECT_FALSE(l.param("router").decay);
  EXPECT_EQ(l.param("router_bias").shape, (Shape{8}));
  EXPECT_FALSE(l.param("router_bias").trainable);
  EXPECT_FALSE(l.param("router_bias").grad.defined());
  EXPECT_EQ(l.param("experts.gate_up").shape, (Shape{8, 16, 16}));
  EXPECT_EQ(l.param("experts.down").shape, (Shape{8, 16, 8}));
  EXPECT_EQ(l.param("shared.gate_up").shape, (Shape{32, 16}));
  EXPECT_EQ(l.param("shared.down").shape, (Shape{16, 16}));
  Layer none(tiny_moe(RouterScore::sigmoid, 0));
  EXPECT_FALSE(none.store.contains(kPrefix + ".shared.gate_up"));
}

// The layer equals the loop over experts: sigmoid with groups and a bias that changes the selection
// (route_scale 2.5), softmax without normalisation, and no shared experts.
TEST(MoeFfn, ForwardMatchesLoopOverExperts) {
  struct Case {
    const char* name;
    ModelConfig c;
    float bias_std;
    BatchShape b;
  };
  const Case cases[] = {
      {"sigmoid, 2 groups keep 1, biased, scale 2.5, 1 shared", tiny_moe(RouterScore::sigmoid, 1), 0.3f, batch_of(2, 8)},
      {"softmax, raw gates, 2 shared", tiny_moe(RouterScore::softmax, 2), 0.0f, batch_of(3, 4)},
      {"sigmoid, no shared experts", tiny_moe(RouterScore::sigmoid, 0), 0.1f, batch_of(1, 12)},
  };
  for (const auto& cs : cases) {
    Layer l(cs.c, cs.bias_std);
    const std::int64_t t_n = cs.b.tokens(), d = cs.c.dim;
    const Tensor x = test::random_tensor({t_n, d}, DType::f32, 20);
    Tensor out = Tensor::host({t_n, d}, DType::f32);
    MoeStats stats;
    const auto saved = l.moe.forward(kCpu, cs.b, x, out, stats);
    const RefMoe ref = ref_moe(l, cs.b, x);

    std::vector<std::int32_t> want_idx;
    for (const auto& v : ref.idx) want_idx.insert(want_idx.end(), v.begin(), v.end());
    EXPECT_EQ(selection(saved.expert_idx), want_idx) << cs.name;
    double err = 0, scale = 0;
    for (std::int64_t i = 0; i < t_n * d; ++i) {
      err = std::max(err, std::fabs(out.data<float>()[i] - ref.out[i]));
      scale = std::max(scale, std::fabs(ref.out[i]));
    }
    EXPECT_LT(err, 1e-5 * std::max(scale, 1.0)) << cs.name << " (output scale " << scale << ")";
    EXPECT_NEAR(stats.balance_loss.data<float>()[0], ref.balance_loss, 1e-6 * ref.balance_loss) << cs.name;
    EXPECT_EQ(selection(stats.counts), std::vector<std::int32_t>(ref.counts.begin(), ref.counts.end())) << cs.name;
    if (cs.bias_std == 0.3f) {  // the bias must matter for this case to test what it says
      const RefMoe unbiased = ref_moe(l, cs.b, x, /*use_bias=*/false);
      EXPECT_NE(unbiased.idx, ref.idx) << cs.name << ": the bias does not change any selection";
    }
  }
}

// Loss = sum(w * out) + balance_loss: dx and every parameter gradient against central differences, at a
// point where no selection changes under the step (checked at every evaluation).
TEST(MoeFfn, BackwardMatchesFiniteDifferences) {
  struct Case {
    const char* name;
    ModelConfig c;
    float bias_std;
    BatchShape b;
    double out_weight;  // 0: the balance loss alone, so its gradient is not drowned by the output's
  };
  const Case cases[] = {
      {"sigmoid, groups, biased, 1 shared", tiny_moe(RouterScore::sigmoid, 1), 0.3f, batch_of(2, 8), 1.0},
      {"softmax, raw gates, 2 shared", tiny_moe(RouterScore::softmax, 2), 0.0f, batch_of(3, 4), 1.0},
      {"sigmoid, balance loss only", tiny_moe(RouterScore::sigmoid, 1), 0.3f, batch_of(2, 8), 0.0},
      {"softmax, balance loss only", tiny_moe(RouterScore::softmax, 1), 0.0f, batch_of(3, 4), 0.0},
  };
  for (const auto& cs : cases) {
    Layer l(cs.c, cs.bias_std);
    const std::int64_t t_n = cs.b.tokens(), d = cs.c.dim;
    const Tensor x = test::random_tensor({t_n, d}, DType::f32, 30);
    const Tensor w = test::random_tensor({t_n, d}, DType::f32, 31, static_cast<float>(cs.out_weight));
    Tensor out = Tensor::host({t_n, d}, DType::f32), dx = Tensor::host({t_n, d}, DType::f32);
    MoeStats stats;
    const auto saved = l.moe.forward(kCpu, cs.b, x, out, stats);
    l.moe.backward(kCpu, cs.b, saved, w, dx, 1.0f);
    const std::vector<std::int32_t> sel0 = selection(saved.expert_idx);

    int moved = 0;
    const auto loss = [&] {
      MoeStats st;
      const auto s = l.moe.forward(kCpu, cs.b, x, out, st);
      moved += selection(s.expert_idx) != sel0;
      return dot(w, out) + st.balance_loss.data<float>()[0];
    };
    // f32 forward: the loss carries ~1e-6 of rounding, so the step is 3e-3 (selection margins are wider).
    const double eps = 3e-3, tol = cs.out_weight == 0 ? 2e-2 : 5e-3;
    const auto rx = test::gradcheck(loss, x, dx, eps);
    EXPECT_LT(rx.relative(), tol) << cs.name << ": dx error " << rx.max_abs_error << " of " << rx.max_abs_grad;
    for (const char* name : {"router", "experts.gate_up", "experts.down", "shared.gate_up", "shared.down"}) {
      if (cs.out_weight == 0 && std::string(name) != "router") continue;  // the balance loss reaches only these
      Param& p = l.param(name);
      const auto r = test::gradcheck(loss, p.master, p.grad, eps, p.master.numel() > 512 ? 7 : 3);
      EXPECT_LT(r.relative(), tol) << cs.name << ": " << name << " error " << r.max_abs_error << " of "
                                   << r.max_abs_grad;
      EXPECT_GT(r.max_abs_grad, 0.0) << cs.name << ": " << name;
    }
    EXPECT_EQ(moved, 0) << cs.name << ": a selection changed under the finite-difference step";
  }
}

TEST(MoeFfn, GradientsAccumulateOverBackwardCalls) {
  Layer l(tiny_moe(RouterScore::sigmoid, 1), 0.3f);
  const BatchShape b = batch_of(2, 6);
  const Tensor x = test::random_tensor({12, 16}, DType::f32, 40);
  const Tensor w = test::random_tensor({12, 16}, DType::f32, 41);
  Tensor out = Tensor::host({12, 16}, DType::f32), dx = Tensor::host({12, 16}, DType::f32);
  MoeStats stats;
  const auto saved = l.moe.forward(kCpu, b, x, out, stats);
  l.moe.backward(kCpu, b, saved, w, dx, 1.0f);
  const Tensor dx1 = kCpu.to_here(dx);
  std::vector<Tensor> once;
  for (const auto& p : l.store.all())
    if (p->trainable) once.push_back(kCpu.to_here(p->grad));
  for (std::int64_t i = 0; i < dx.numel(); ++i) dx.data<float>()[i] = NAN;  // dx is overwritten, not added to
  l.moe.backward(kCpu, b, saved, w, dx, 1.0f);
  EXPECT_EQ(test::max_error(dx, dx1), 0.0);
  std::size_t i = 0;
  for (const auto& p : l.store.all()) {
    if (!p->trainable) continue;
    const Tensor& g1 = once[i++];
    double err = 0, scale = 0;
    for (std::int64_t j = 0; j < g1.numel(); ++j) {
      err = std::max(err, std::fabs(p->grad.data<float>()[j] - 2.0 * g1.data<float>()[j]));
      scale = std::max(scale, std::fabs(static_cast<double>(g1.data<float>()[j])));
    }
    EXPECT_GT(scale, 0.0) << p->name;
    EXPECT_LE(err, 1e-6 * scale) << p->name << ": not twice the single-call gradient";
  }
}

// [train] fp8_cache_swiglu_input (precision fp8): the forward is unchanged but keeps the routed experts' gate_up
// as E4M3 tiles instead of gate_up and SwiGLU's output; its backward is, bit for bit, the uncached backward run on
// those tiles dequantised and their SwiGLU (so the cache rounds gate_up and nothing else).
TEST(MoeFfn, Fp8CachedSwigluInputIsTheUncachedBackwardOnItsTiles) {
  const ModelConfig c = tiny_moe(RouterScore::sigmoid, 1);
  ParamStore plain(kCpu, DType::f32, /*fp8=*/true, /*fp8_pow2=*/false, /*fp8_cache_swiglu=*/false);
  ParamStore cached(kCpu, DType::f32, true, false, true);
  const MoeFfn a(c, plain, kPrefix), b(c, cached, kPrefix);
  plain.initialize(77, 0.3);
  cached.initialize(77, 0.3);
  const BatchShape shape = batch_of(2, 6);
  const Tensor x = test::random_tensor({12, 16}, DType::f32, 50), w = test::random_tensor({12, 16}, DType::f32, 51);
  Tensor out_a = Tensor::host({12, 16}, DType::f32), out_b = Tensor::host({12, 16}, DType::f32);
  MoeStats stats_a, stats_b;
  MoeFfn::Saved sa = a.forward(kCpu, shape, x, out_a, stats_a);
  const MoeFfn::Saved sb = b.forward(kCpu, shape, x, out_b, stats_b);
  EXPECT_EQ(test::max_error(out_a, out_b), 0.0);
  ASSERT_TRUE(sb.gate_up_fp8.has_value());
  EXPECT_FALSE(sb.gate_up.defined());
  EXPECT_FALSE(sb.h.defined());
  ASSERT_FALSE(sa.gate_up_fp8.has_value());
  const Tensor tiles = Tensor::host(sa.gate_up.shape(), DType::f32), h = Tensor::host(sa.h.shape(), DType::f32);
  kernels::dequantize_fp8(kCpu, *sb.gate_up_fp8, tiles);
  kernels::swiglu_forward(kCpu, tiles, h);
  EXPECT_GT(test::max_error(tiles, sa.gate_up), 0.0) << "E4M3 tiles round gate_up";
  sa.gate_up = tiles;
  sa.h = h;
  Tensor dx_a = Tensor::host({12, 16}, DType::f32), dx_b = Tensor::host({12, 16}, DType::f32);
  a.backward(kCpu, shape, sa, w, dx_a, 1.0f);
  b.backward(kCpu, shape, sb, w, dx_b, 1.0f);
  EXPECT_EQ(test::max_error(dx_a, dx_b), 0.0);
  for (const auto& p : plain.all()) {
    if (p->trainable) {
      EXPECT_EQ(test::max_error(p->grad, cached.get(p->name).grad), 0.0) << p->name;
    }
  }
}

TEST(MoeFfn, UpdateBiasMovesOverloadedExpertsDownAndUnderloadedUp) {
  Layer l(tiny_moe(RouterScore::sigmoid, 1));
  Tensor counts = Tensor::host({8}, DType::i32);
  const std::int32_t c[8] = {9, 1, 4, 4, 0, 7, 3, 4};  // mean 4
  std::copy(c, c + 8, counts.data<std::int32_t>());
  l.moe.update_bias(kCpu, counts, 0.01f);
  const float* bias = l.param("router_bias").master.data<float>();
  const float want[8] = {-0.01f, 0.01f, 0.0f, 0.0f, 0.01f, -0.01f, 0.01f, 0.0f};
  for (int e = 0; e < 8; ++e) EXPECT_FLOAT_EQ(bias[e], want[e]) << "expert " << e;
}

// A skewed router (expert e's logit grows with e on inputs with a common offset) loads the last experts;
// repeated bias updates from the counts spread the load.
TEST(MoeFfn, BiasFeedbackBalancesASkewedLoad) {
  Layer l(tiny_moe(RouterScore::sigmoid, 1));
  const BatchShape b = batch_of(2, 12);
  const std::int64_t d = 16, t_n = b.tokens();
  Tensor x = test::random_tensor({t_n, d}, DType::f32, 50);
  for (std::int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] += 1.0f;
  float* wr = l.param("router").master.data<float>();
  for (std::int64_t e = 0; e < 8; ++e)
    for (std::int64_t i = 0; i < d; ++i) wr[e * d + i] = 0.1f * wr[e * d + i] + 0.02f * static_cast<float>(e);
  Tensor out = Tensor::host({t_n, d}, DType::f32);

  std::vector<double> ratio;
  for (int step = 0; step < 200; ++step) {
    MoeStats stats;
    l.moe.forward(kCpu, b, x, out, stats);
    ratio.push_back(max_load_ratio(stats.counts));
    l.moe.update_bias(kCpu, stats.counts, 0.01f);
  }
  const double late = std::accumulate(ratio.end() - 20, ratio.end(), 0.0) / 20;
  EXPECT_GE(ratio.front(), 3.0) << "the input is not skewed enough to test the feedback";
  EXPECT_LT(late, 0.5 * ratio.front()) << "max/mean load: first " << ratio.front() << ", last 20 steps " << late;
}

// The bf16 compute path (GPU runs) on the CPU: bf16 activations and weight copies, f32 router logits,
// the dlogits cast for the router GEMMs. Tokens routed alike in both precisions agree to bf16 accuracy.
TEST(MoeFfn, Bf16ComputeTracksF32) {
  const ModelConfig c = tiny_moe(RouterScore::sigmoid, 1);
  const BatchShape b = batch_of(2, 8);
  const std::int64_t t_n = b.tokens(), d = c.dim;
  ParamStore s32(kCpu, DType::f32), s16(kCpu, DType::bf16);
  MoeFfn m32(c, s32, kPrefix), m16(c, s16, kPrefix);
  s32.initialize(77, 0.3);
  s16.initialize(77, 0.3);
  const Tensor x16 = test::random_tensor({t_n, d}, DType::bf16, 60), w16 = test::random_tensor({t_n, d}, DType::bf16, 61);
  Tensor x32 = Tensor::host({t_n, d}, DType::f32), w32 = Tensor::host({t_n, d}, DType::f32);
  kernels::cast(kCpu, x16, x32);
  kernels::cast(kCpu, w16, w32);
  Tensor o32 = Tensor::host({t_n, d}, DType::f32), o16 = Tensor::host({t_n, d}, DType::bf16);
  Tensor dx32 = Tensor::host({t_n, d}, DType::f32), dx16 = Tensor::host({t_n, d}, DType::bf16);
  MoeStats st32, st16;
  const auto sv32 = m32.forward(kCpu, b, x32, o32, st32);
  const auto sv16 = m16.forward(kCpu, b, x16, o16, st16);
  m32.backward(kCpu, b, sv32, w32, dx32, 1.0f);
  m16.backward(kCpu, b, sv16, w16, dx16, 1.0f);

  const auto sel32 = selection(sv32.expert_idx), sel16 = selection(sv16.expert_idx);
  int same = 0;
  double out_err = 0, out_scale = 0;
  for (std::int64_t t = 0; t < t_n; ++t) {
    if (!std::equal(sel32.begin() + 2 * t, sel32.begin() + 2 * t + 2, sel16.begin() + 2 * t)) continue;
    ++same;
    for (std::int64_t o = 0; o < d; ++o) {
      out_err = std::max(out_err, std::fabs(test::value(o16, t * d + o) - test::value(o32, t * d + o)));
      out_scale = std::max(out_scale, std::fabs(test::value(o32, t * d + o)));
    }
  }
  EXPECT_GE(same, t_n - 2) << "bf16 rounding moved too many selections to compare";
  EXPECT_LT(out_err, 3e-2 * out_scale);
  if (same == t_n) {  // the gradients are comparable only when every token routes alike
    for (const char* name : {"router", "experts.gate_up", "shared.down"}) {
      const Tensor& g32 = s32.get(kPrefix + "." + name).grad;
      const Tensor& g16 = s16.get(kPrefix + "." + name).grad;
      double scale = 0;
      for (std::int64_t i = 0; i < g32.numel(); ++i) scale = std::max(scale, std::fabs(test::value(g32, i)));
      EXPECT_LT(test::max_error(g16, g32), 5e-2 * scale) << name;
    }
    double scale = 0;
    for (std::int64_t i = 0; i < dx32.numel(); ++i) scale = std::max(scale, std::fabs(test::value(dx32, i)));
    EXPECT_LT(test::max_error(dx16, dx32), 5e-2 * scale) << "dx";
  }
}

// Device-limited routing: the bound ModelConfig::max_expert_ranks_per_token gives holds for the router's
// real selections over random logits (and is reached), for groups aligned with the EP ranks, groups
// wider than a rank, groups straddling ranks, and no group limit.
TEST(MoeRouting, TokensReachAtMostTheBoundedNumberOfExpertRanks) {
  struct Case {
    std::int64_t experts, groups, limited, top_k, ep, expected;
  };
  const Case cases[] = {
      {16, 4, 2, 4, 4, 2},   // one group per rank: DeepSeek-V3's node limit M = n_limited_groups
      {16, 8, 2, 4, 4, 2},   // two groups per rank
      {16, 2, 1, 4, 4, 2},   // a group spans two ranks
      {12, 3, 1, 3, 4, 2},   // 4-expert groups over 3-expert ranks: each group straddles a rank boundary
      {16, 1, 1, 4, 8, 4},   // no group limit: top-k
      {16, 4, 4, 8, 4, 4},   // every group allowed: every rank
  };
  for (const Case& k : cases) {
    ModelConfig c;
    c.n_routed_experts = k.experts;
    c.n_expert_groups = k.groups;
    c.n_limited_groups = k.limited;
    c.n_activated_experts = k.top_k;
    const std::int64_t bound = c.max_expert_ranks_per_token(k.ep);
    EXPECT_EQ(bound, k.expected) << k.experts << " experts, " << k.groups << " groups, " << k.limited << " kept, ep " << k.ep;
    const std::int64_t t_n = 2048;
    const kernels::RouterParams p{.top_k = static_cast<int>(k.top_k), .n_groups = static_cast<int>(k.groups),
                                  .topk_groups = static_cast<int>(k.limited)};
    const Tensor logits = test::random_tensor({t_n, k.experts}, DType::f32, 77);
    Tensor scores = Tensor::host({t_n, k.experts}, DType::f32), idx = Tensor::host({t_n, k.top_k}, DType::i32),
           gates = Tensor::host({t_n, k.top_k}, DType::f32);
    kernels::moe_router_forward(kCpu, logits, Tensor{}, p, scores, idx, gates);
    std::int64_t most = 0;
    for (std::int64_t t = 0; t < t_n; ++t) {
      std::vector<std::int64_t> ranks;
      for (std::int64_t j = 0; j < k.top_k; ++j) ranks.push_back(idx.data<std::int32_t>()[t * k.top_k + j] / (k.experts / k.ep));
      std::sort(ranks.begin(), ranks.end());
      most = std::max<std::int64_t>(most, std::unique(ranks.begin(), ranks.end()) - ranks.begin());
    }
    EXPECT_LE(most, bound);
    EXPECT_EQ(most, bound) << "random logits over " << t_n << " tokens should reach the bound";
  }
}
