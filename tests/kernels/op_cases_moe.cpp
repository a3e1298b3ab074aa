// Op cases of MoE routing: the router (selection, gates and their backward), the balance loss and bias update,
// and the token permutation with its combine and backwards. Selections, indices, offsets and row moves are
// bit-identical between backends (one shared routing routine, one stable order); f32 values agree within the
// tolerance stated beside each output.
#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/moe_balance.hpp"
#include "kernels/moe_permute.hpp"
#include "kernels/moe_router.hpp"
#include "kernels/op_cases.hpp"
#include "kernels/test_util.hpp"

namespace r1::test {

namespace {
using kernels::Context;
using kernels::RouterParams;
using kernels::ScoreFunc;

// Router logits as a router GEMM makes them (N(0, 2^2)), or on a coarse grid of 0.5 (many exact ties), or a
// ladder 0.25 apart within each token (a token-dependent shuffle): every selection margin is then far wider than
// a finite-difference step, so the selection stays fixed while a check perturbs.
enum class Logits { random, coarse, ladder };
Tensor router_logits(std::int64_t t, std::int64_t e, Logits kind) {
  if (kind == Logits::ladder) {
    Tensor x = Tensor::host({t, e}, DType::f32);
    for (std::int64_t i = 0; i < t; ++i) {
      std::vector<std::int64_t> order(e);
      std::iota(order.begin(), order.end(), 0);
      std::rotate(order.begin(), order.begin() + (i * 5) % e, order.end());
      if (i % 2) std::reverse(order.begin(), order.end());
      for (std::int64_t c = 0; c < e; ++c)
        x.data<float>()[i * e + c] = 0.25f * static_cast<float>(order[(c * 3) % e]) - 1.5f;
    }
    return x;
  }
  Tensor x = random_tensor({t, e}, DType::f32, 1, 2.0f);
  if (kind == Logits::coarse)
    for (std::int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = std::round(x.data<float>()[i] * 2.0f) / 2.0f;
  return x;
}

// No bias, zeros, N(0, 0.05^2), or steps of 0.01 (i mod 3).
enum class Bias { none, zeros, random, steps };
Tensor router_bias(std::int64_t e, Bias kind) {
  switch (kind) {
    case Bias::none: return Tensor();
    case Bias::zeros: return Tensor::host_zeros({e}, DType::f32);
    case Bias::random: return random_tensor({e}, DType::f32, 2, 0.05f);
    case Bias::steps: break;
  }
  Tensor b = Tensor::host({e}, DType::f32);
  for (std::int64_t i = 0; i < e; ++i) b.data<float>()[i] = 0.01f * static_cast<float>(i % 3);
  return b;
}

struct RouterSpec {
  const char* name;
  std::int64_t t, e;
  RouterParams p;
  Logits logits;
  Bias bias;
  std::uint32_t seed_dgates;
  bool grad = false;
  bool replay = false;  // moe_router_replay with replay_ids: even tokens keep given experts, odd ones are routed
};

// Routing replay's input: token i even keeps experts (5i + 3j) mod e, j < k (distinct: 3 is coprime to every
// expert count here), whatever its scores say; token i odd is -1 (routed).
Tensor replay_ids(std::int64_t t, std::int64_t e, std::int64_t k) {
  Tensor ids = Tensor::host({t, k}, DType::i32);
  for (std::int64_t i = 0; i < t; ++i)
    for (std::int64_t j = 0; j < k; ++j)
      ids.data<std::int32_t>()[i * k + j] = i % 2 ? -1 : static_cast<std::int32_t>((5 * i + 3 * j) % e);
  return ids;
}

// The forward under test: moe_router_forward, or moe_router_replay from the replay ids (restored first, since
// replay writes the routed rows' choices into them).
void route(const Context& ctx, const RouterSpec& s, const Tensor& logits, const Tensor& bias, const Tensor& ids,
           const Tensor& scores, const Tensor& idx, const Tensor& gates) {
  if (!s.replay) return kernels::moe_router_forward(ctx, logits, bias, s.p, scores, idx, gates);
  copy(idx, ids);
  kernels::moe_router_replay(ctx, logits, bias, s.p, scores, idx, gates);
}

// The same per-token routine on both sides with deterministic exp and explicitly rounded steps: scores, selections
// and gates are the same bits. The backward is the same code too, but the GPU may fuse its multiply-adds: 1e-5 of
// the largest gradient. Finite differences: 2e-3 of the largest gradient with eps 1e-3.
OpCase router_case(const RouterSpec& s) {
  const std::int64_t k = s.p.top_k;
  OpCase c{s.replay ? "moe_router_replay" : "moe_router",
           std::string(s.name) + ", " + std::to_string(s.t) + " tokens, " + std::to_string(s.e) + " experts"};
  c.bind = [=](const Context& ctx) {
    const Tensor hb = router_bias(s.e, s.bias);
    const Tensor logits = ctx.to_here(router_logits(s.t, s.e, s.logits)),
                 bias = hb.defined() ? ctx.to_here(hb) : Tensor();
    const Tensor dgates = ctx.to_here(random_tensor({s.t, k}, DType::f32, s.seed_dgates));
    const Tensor scores = ctx.empty({s.t, s.e}, DType::f32), idx = ctx.empty({s.t, k}, DType::i32);
    const Tensor gates = ctx.empty({s.t, k}, DType::f32), dlogits = ctx.empty({s.t, s.e}, DType::f32);
    const Tensor ids = ctx.to_here(replay_ids(s.t, s.e, k));
    return Run{[=] {
                 route(ctx, s, logits, bias, ids, scores, idx, gates);
                 kernels::moe_router_backward(ctx, dgates, scores, idx, gates, s.p, dlogits);
               },
               [=] {
                 const Tensor hd = to_host(dlogits);
                 return std::vector{output("expert_idx", idx, bit_exact()), output("scores", scores, bit_exact()),
                                    output("gates", gates, bit_exact()),
                                    Output{"dlogits", hd, within(1e-5 * max_abs(hd))}};
               },
               bytes_of({logits, scores, idx, gates, dgates, scores, idx, gates, dlogits})};
  };
  if (s.grad)
    c.grad = [=] {
      const Context cpu = Context::cpu();
      const Tensor logits = router_logits(s.t, s.e, s.logits), bias = router_bias(s.e, s.bias);
      const Tensor w = random_tensor({s.t, k}, DType::f32, s.seed_dgates),
                   dlogits = Tensor::host({s.t, s.e}, DType::f32);
      const Tensor scores = Tensor::host({s.t, s.e}, DType::f32), idx = Tensor::host({s.t, k}, DType::i32);
      const Tensor gates = Tensor::host({s.t, k}, DType::f32), ids = replay_ids(s.t, s.e, k);
      route(cpu, s, logits, bias, ids, scores, idx, gates);
      const Tensor idx0 = cpu.to_here(idx);
      kernels::moe_router_backward(cpu, w, scores, idx, gates, s.p, dlogits);
      return GradCheck{[=] {
                         route(cpu, s, logits, bias, ids, scores, idx, gates);
                         for (std::int64_t i = 0; i < idx.numel(); ++i)
                           EXPECT_EQ(idx.data<std::int32_t>()[i], idx0.data<std::int32_t>()[i])
                               << "selection moved under the step";
                         return dot(w, gates);
                       },
                       {{"dlogits", logits, dlogits, 1e-3, 2e-3}}};
    };
  return c;
}

void add_router_cases(std::vector<OpCase>& out) {
  const RouterParams v3{
      .score_func = ScoreFunc::sigmoid, .top_k = 8, .n_groups = 8, .topk_groups = 4, .route_scale = 2.5f};
  const RouterParams v2_lite{.score_func = ScoreFunc::softmax, .top_k = 6, .normalize = false};
  const RouterSpec cases[] = {
      {"V2-Lite softmax raw", 4099, 64, v2_lite, Logits::random, Bias::none, 3},
      {"V3 sigmoid groups 8/4", 3001, 256, v3, Logits::random, Bias::random, 3},
      {"236B softmax groups 8/3", 2048, 160,
       {.score_func = ScoreFunc::softmax, .top_k = 6, .n_groups = 8, .topk_groups = 3, .route_scale = 16.0f},
       Logits::random, Bias::none, 3},
      {"ties: coarse logits, sigmoid groups", 1000, 64,
       {.score_func = ScoreFunc::sigmoid, .top_k = 6, .n_groups = 4, .topk_groups = 2, .route_scale = 2.5f},
       Logits::coarse, Bias::zeros, 3},
      {"ties: coarse logits, softmax", 1000, 64, {.score_func = ScoreFunc::softmax, .top_k = 6}, Logits::coarse,
       Bias::none, 3},
      // Decode shapes: a warp per token, so one token, and a block (4 tokens) plus one.
      {"decode: one token, V3 sigmoid groups 8/4", 1, 256, v3, Logits::random, Bias::random, 3},
      {"decode: five tokens, V2-Lite softmax", 5, 64, v2_lite, Logits::random, Bias::none, 3},
      {"one expert per group, 64 groups keep 5", 7, 64,
       {.score_func = ScoreFunc::sigmoid, .top_k = 4, .n_groups = 64, .topk_groups = 5}, Logits::coarse, Bias::zeros,
       3},
      // Finite differences through the normalisation and both score functions.
      {"sigmoid normalised, groups 4/2, scale 2.5", 6, 16,
       {.score_func = ScoreFunc::sigmoid, .top_k = 3, .n_groups = 4, .topk_groups = 2, .route_scale = 2.5f},
       Logits::ladder, Bias::steps, 7, true},
      {"softmax raw (V2-Lite)", 6, 16, {.score_func = ScoreFunc::softmax, .top_k = 4, .normalize = false},
       Logits::ladder, Bias::steps, 7, true},
      {"softmax normalised, groups 8/3, scale 16", 6, 16,
       {.score_func = ScoreFunc::softmax, .top_k = 3, .n_groups = 8, .topk_groups = 3, .route_scale = 16.0f},
       Logits::ladder, Bias::steps, 7, true},
      {"sigmoid raw", 6, 16, {.score_func = ScoreFunc::sigmoid, .top_k = 2, .normalize = false}, Logits::ladder,
       Bias::steps, 7, true},
      // Routing replay: even tokens keep given experts (gates from these scores, the bias ignored), odd ones routed.
      {"replay: V3 sigmoid groups 8/4", 3001, 256, v3, Logits::random, Bias::random, 3, false, true},
      {"replay: decode, one token, V3", 1, 256, v3, Logits::random, Bias::random, 3, false, true},
      {"replay: softmax raw (V2-Lite)", 4099, 64, v2_lite, Logits::random, Bias::none, 3, false, true},
      {"replay: sigmoid normalised, groups 4/2, scale 2.5", 6, 16,
       {.score_func = ScoreFunc::sigmoid, .top_k = 3, .n_groups = 4, .topk_groups = 2, .route_scale = 2.5f},
       Logits::ladder, Bias::steps, 7, true, true},
      {"replay: softmax normalised", 6, 16, {.score_func = ScoreFunc::softmax, .top_k = 3}, Logits::ladder,
       Bias::steps, 7, true, true},
  };
  for (const RouterSpec& s : cases) out.push_back(router_case(s));
}

// ---------------------------------------------------------------- balance loss and bias update

struct BalanceSpec {
  std::int64_t sequences, seq_len, e, k;
  ScoreFunc f;
  float alpha, dloss;
  std::uint32_t seed_logits;
  float logits_std;
  std::uint32_t seed_base;  // dlogits before the backward adds to it
  float base_std;
  bool grad = false;
};

// On the CPU router's scores and selection. Counts are integers (exact); the loss and P sums accumulate in double
// on both sides in different orders, rounded once to f32: 1e-6 relative. The backward is the shared per-token
// double code added onto f32: 1e-6 of the largest value. The bias update is exact. Finite differences: the loss
// comes back in f32, whose rounding (6e-8 relative) over a 2e-2 step bounds the error: 5e-3.
OpCase balance_case(const BalanceSpec& s) {
  const std::int64_t t = s.sequences * s.seq_len, e = s.e, k = s.k;
  const RouterParams p{.score_func = s.f, .top_k = static_cast<int>(k)};
  const kernels::BalanceParams bp{.seq_len = s.seq_len, .alpha = s.alpha, .score_func = s.f};
  OpCase c{"moe_balance", std::string(kernels::score_func_name(s.f)) + ", " + std::to_string(s.sequences) + " x " +
                              std::to_string(s.seq_len) + " tokens, " + std::to_string(e) + " experts, top " +
                              std::to_string(k)};
  struct Routed {
    Tensor logits, scores, idx;
  };
  const auto routed = [=] {
    Routed r{random_tensor({t, e}, DType::f32, s.seed_logits, s.logits_std), Tensor::host({t, e}, DType::f32),
             Tensor::host({t, k}, DType::i32)};
    kernels::moe_router_forward(Context::cpu(), r.logits, Tensor(), p, r.scores, r.idx,
                                Tensor::host({t, k}, DType::f32));
    return r;
  };
  c.bind = [=](const Context& ctx) {
    const Routed r = routed();
    const Tensor scores = ctx.to_here(r.scores), idx = ctx.to_here(r.idx);
    const Tensor dlogits = ctx.to_here(random_tensor({t, e}, DType::f32, s.seed_base, s.base_std));
    const Tensor bias = ctx.to_here(random_tensor({e}, DType::f32, 6, 0.1f));
    const Tensor loss = ctx.empty({1}, DType::f32), counts = ctx.empty({e}, DType::i32);
    return Run{[=] {
                 kernels::moe_balance_forward(ctx, scores, idx, bp, loss, counts);
                 kernels::moe_balance_backward(ctx, s.dloss, scores, idx, bp, dlogits);
                 kernels::moe_bias_update(ctx, counts, 1e-3f, bias);
               },
               [=] {
                 const Tensor hd = to_host(dlogits);
                 return std::vector{output("counts", counts, bit_exact()), output("loss", loss, within(0, 1e-6)),
                                    Output{"dlogits", hd, within(1e-6 * max_abs(hd))},
                                    output("bias", bias, bit_exact())};
               },
               bytes_of({scores, idx, scores, idx, dlogits, dlogits})};
  };
  if (s.grad)
    c.grad = [=] {
      const Context cpu = Context::cpu();
      const Routed r = routed();
      const Tensor idx0 = r.idx;  // counts are piecewise constant: held at this selection
      const Tensor dlogits = random_tensor({t, e}, DType::f32, s.seed_base, s.base_std), before = cpu.to_here(dlogits);
      kernels::moe_balance_backward(cpu, s.dloss, r.scores, idx0, bp, dlogits);
      for (std::int64_t i = 0; i < t * e; ++i) dlogits.data<float>()[i] -= before.data<float>()[i];  // accumulated +=
      const Tensor scores = Tensor::host({t, e}, DType::f32), idx = Tensor::host({t, k}, DType::i32);
      const Tensor gates = Tensor::host({t, k}, DType::f32), l = Tensor::host({1}, DType::f32);
      const Tensor counts = Tensor::host({e}, DType::i32);
      return GradCheck{[=] {
                         kernels::moe_router_forward(cpu, r.logits, Tensor(), p, scores, idx, gates);
                         kernels::moe_balance_forward(cpu, scores, idx0, bp, l, counts);
                         return static_cast<double>(l.data<float>()[0]);
                       },
                       {{"dlogits", r.logits, dlogits, 1e-2, 5e-3}}};
    };
  return c;
}

void add_balance_cases(std::vector<OpCase>& out) {
  for (ScoreFunc f : {ScoreFunc::sigmoid, ScoreFunc::softmax})
    out.push_back(balance_case({2, 4096, 64, 6, f, 1e-4f, 0.5f, 4, 2.0f, 5, 1e-4f}));
  for (ScoreFunc f : {ScoreFunc::sigmoid, ScoreFunc::softmax})
    out.push_back(balance_case({3, 4, 8, 2, f, 1.0f, 1.0f, 8, 1.0f, 9, 1.0f, true}));
}

// ---------------------------------------------------------------- permutation

// Expert choices with a skew (expert e takes about twice the load of expert e + 1, a few get none), or (i 5 + i / k)
// mod E for pair i.
enum class Choice { skewed, modular };
Tensor expert_choices(std::int64_t t, std::int64_t k, std::int64_t e, Choice kind) {
  Tensor idx = Tensor::host({t, k}, DType::i32);
  for (std::int64_t i = 0; i < t; ++i)
    for (std::int64_t j = 0; j < k; ++j) {
      const std::int64_t p = i * k + j;
      const float u = random_uniform(RngKey{2024, 99}, static_cast<std::uint64_t>(i));
      idx.data<std::int32_t>()[p] =
          kind == Choice::modular
              ? static_cast<std::int32_t>((p * 5 + p / k) % e)
              : static_cast<std::int32_t>((static_cast<std::int64_t>(u * u * u * (e - 4)) + j * 7) % (e - 4));
    }
  return idx;
}

// Finite differences of the combine (w.r.t. y_perm and gates) or of the dispatch (w.r.t. x).
enum class PermuteGrad { none, unpermute, permute };

struct PermuteSpec {
  std::int64_t t, k, e, d;
  DType dt;
  Choice choice;
  std::uint32_t seed_x, seed_yp, seed_gates, seed_dy;
  PermuteGrad grad = PermuteGrad::none;
};

// The routing map and the moved rows are bit-identical (the same stable order); the gate-weighted combine may use
// FMA on the GPU: 1e-6 of k max |y| for f32, one bf16 rounding (2^-7 of max |y|) for bf16, and the permute
// backward (the same sums without gates) within that too. The unpermute backward's dy_perm is one multiply
// (bit-identical); dgates are dot products in different orders: 1e-5 of the largest sum_d |dy y_perm|.
std::vector<Output> permute_outputs(const PermuteSpec& s, const std::vector<Tensor>& t, const Tensor& hdy,
                                    const Tensor& hyp) {
  std::vector<Output> outs{output("expert_offsets", t[0], bit_exact()), output("row_of", t[1], bit_exact()),
                           output("x_perm", t[2], bit_exact())};
  if (t.size() == 3) return outs;
  const Tensor hy = to_host(t[3]), hrow = outs[1].value;
  const Tolerance combine = within(s.dt == DType::f32 ? 1e-6 * s.k * max_abs(hy) : 0.0079 * max_abs(hy));
  double scale = 0;
  for (std::int64_t i = 0; i < s.t; ++i)
    for (std::int64_t j = 0; j < s.k; ++j) {
      double sum = 0;
      const std::int64_t r = hrow.data<std::int32_t>()[i * s.k + j];
      for (std::int64_t c = 0; c < s.d; ++c) sum += std::fabs(value(hdy, i * s.d + c) * value(hyp, r * s.d + c));
      scale = std::max(scale, sum);
    }
  outs.push_back({"unpermute", hy, combine});
  outs.push_back(output("permute_backward", t[4], combine));
  outs.push_back(output("dy_perm", t[5], bit_exact()));
  outs.push_back(output("dgates", t[6], within(1e-5 * scale)));
  return outs;
}

OpCase permute_case(const PermuteSpec& s) {
  const std::int64_t n = s.t * s.k;
  OpCase c{"moe_permute", describe(s.dt, {s.t, s.d}) + ", top " + std::to_string(s.k) + " of " + std::to_string(s.e) +
                              (s.choice == Choice::skewed ? ", skewed" : "")};
  c.bind = [=](const Context& ctx) {
    const Tensor x = ctx.to_here(random_tensor({s.t, s.d}, s.dt, s.seed_x)),
                 idx = ctx.to_here(expert_choices(s.t, s.k, s.e, s.choice));
    // expert_offsets, row_of, x_perm, then (pairs to combine) y, dx, dy_perm, dgates
    std::vector<Tensor> t{ctx.empty({s.e + 1}, DType::i32), ctx.empty({s.t, s.k}, DType::i32),
                          ctx.empty({n, s.d}, s.dt)};
    const Tensor hyp = random_tensor({n, s.d}, s.dt, s.seed_yp), hdy = random_tensor({s.t, s.d}, s.dt, s.seed_dy);
    const Tensor yp = ctx.to_here(hyp), gates = ctx.to_here(random_tensor({s.t, s.k}, DType::f32, s.seed_gates));
    const Tensor dy = ctx.to_here(hdy);
    if (n > 0)
      for (const Tensor& o : {ctx.empty({s.t, s.d}, s.dt), ctx.empty({s.t, s.d}, s.dt), ctx.empty({n, s.d}, s.dt),
                              ctx.empty({s.t, s.k}, DType::f32)})
        t.push_back(o);
    const auto host_offsets = std::make_shared<std::vector<std::int64_t>>();
    return Run{[=] {
                 *host_offsets = kernels::moe_permute(ctx, x, idx, t[2], t[1], t[0]);
                 if (n == 0) return;
                 kernels::moe_unpermute(ctx, yp, t[1], gates, t[3]);
                 kernels::moe_permute_backward(ctx, yp, t[1], t[4]);
                 kernels::moe_unpermute_backward(ctx, dy, yp, t[1], gates, t[5], t[6]);
               },
               [=] {
                 Tensor offsets = Tensor::host({s.e + 1}, DType::i64);
                 std::copy(host_offsets->begin(), host_offsets->end(), offsets.data<std::int64_t>());
                 std::vector<Output> outs = permute_outputs(s, t, hdy, hyp);
                 outs.push_back({"host offsets", offsets, bit_exact()});
                 return outs;
               },
               bytes_of({x, idx, t[2]}) + (n > 0 ? 3 * bytes_of({yp, dy}) : 0.0)};
  };
  if (s.grad != PermuteGrad::none)
    c.grad = [=] {
      const Context cpu = Context::cpu();
      const Tensor x = random_tensor({s.t, s.d}, DType::f32, s.seed_x), idx = expert_choices(s.t, s.k, s.e, s.choice);
      const Tensor xp = Tensor::host({n, s.d}, DType::f32), row_of = Tensor::host({s.t, s.k}, DType::i32);
      const Tensor off = Tensor::host({s.e + 1}, DType::i32);
      kernels::moe_permute(cpu, x, idx, xp, row_of, off);
      const Tensor yp = random_tensor({n, s.d}, DType::f32, s.seed_yp);
      if (s.grad == PermuteGrad::permute) {
        const Tensor dx = Tensor::host({s.t, s.d}, DType::f32);
        kernels::moe_permute_backward(cpu, yp, row_of, dx);
        return GradCheck{[=] {
                           kernels::moe_permute(cpu, x, idx, xp, row_of, off);
                           return dot(yp, xp);
                         },
                         {{"dx", x, dx}}};
      }
      const Tensor gates = random_tensor({s.t, s.k}, DType::f32, s.seed_gates),
                   w = random_tensor({s.t, s.d}, DType::f32, s.seed_dy);
      const Tensor dyp = Tensor::host({n, s.d}, DType::f32), dg = Tensor::host({s.t, s.k}, DType::f32);
      const Tensor y = Tensor::host({s.t, s.d}, DType::f32);
      kernels::moe_unpermute_backward(cpu, w, yp, row_of, gates, dyp, dg);
      return GradCheck{[=] {
                         kernels::moe_unpermute(cpu, yp, row_of, gates, y);
                         return dot(w, y);
                       },
                       {{"dy_perm", yp, dyp}, {"dgates", gates, dg}}};
    };
  return c;
}

void add_permute_cases(std::vector<OpCase>& out) {
  for (const PermuteSpec& s :
       {PermuteSpec{1031, 6, 64, 2048, DType::bf16, Choice::skewed, 7, 8, 9, 10},
        PermuteSpec{517, 8, 256, 33, DType::f32, Choice::skewed, 7, 8, 9, 10},
        PermuteSpec{300, 2, 8, 7, DType::bf16, Choice::skewed, 7, 8, 9, 10},
        PermuteSpec{0, 6, 64, 16, DType::f32, Choice::skewed, 7, 8, 9, 10},
        PermuteSpec{9, 3, 4, 5, DType::f32, Choice::modular, 10, 11, 12, 13, PermuteGrad::unpermute},
        PermuteSpec{9, 2, 3, 4, DType::f32, Choice::modular, 14, 15, 16, 17, PermuteGrad::permute}})
    out.push_back(permute_case(s));
}
}  // namespace

void add_moe_cases(std::vector<OpCase>& out) {
  add_router_cases(out);
  add_balance_cases(out);
  add_permute_cases(out);
}

}  // namespace r1::test
