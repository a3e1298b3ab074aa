// Op cases of the transformer building blocks: rmsnorm, swiglu, rope, cross_entropy, adamw, embedding and
// gather_rows, forward
// and backward, f32 and bf16 activations. Parity tolerances: f32 outputs a few ulps of the largest value
// (summation order, FMA contraction, expf vs libm exp); bf16 outputs one bf16 rounding (2^-8 relative) of the
// largest value on top, which can land on the other side when the f32 values differ in the last bits.
// Finite differences: 1e-3 of the largest gradient with eps 1e-2 on O(1) f32 inputs (each loss carries ~1e-7
// relative rounding that the quotient divides by 2 eps, truncation is O(eps^2)); a wrong term is off by O(1).
#include <cmath>
#include <vector>

#include "kernels/adamw.hpp"
#include "kernels/cross_entropy.hpp"
#include "kernels/embedding.hpp"
#include "kernels/gather_rows.hpp"
#include "kernels/op_cases.hpp"
#include "kernels/rmsnorm.hpp"
#include "kernels/rope.hpp"
#include "kernels/swiglu.hpp"
#include "kernels/test_util.hpp"

namespace r1::test {

namespace {
using kernels::Context;

Tolerance nn_tol(DType dt, double scale, double f32_rel) {
  return within((dt == DType::bf16 ? 0.0079 : f32_rel) * scale);
}

std::vector<std::int32_t> spread_ids(std::int64_t n, std::int64_t vocab, std::uint32_t salt) {
  std::vector<std::int32_t> ids(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) ids[i] = static_cast<std::int32_t>((i * 7919 + salt * 31 + i * i) % vocab);
  return ids;
}
Tensor ints(const std::vector<std::int32_t>& v) {
  Tensor t = Tensor::host({static_cast<std::int64_t>(v.size())}, DType::i32);
  std::copy(v.begin(), v.end(), t.data<std::int32_t>());
  return t;
}
Tensor floats(const std::vector<float>& v) {
  Tensor t = Tensor::host({static_cast<std::int64_t>(v.size())}, DType::f32);
  std::copy(v.begin(), v.end(), t.data<float>());
  return t;
}

// ---------------------------------------------------------------- rmsnorm

// rstd: f32 sum of squares on the GPU vs double on the CPU, ~sqrt(D) ulps at worst: 1e-5 of the largest.
OpCase rmsnorm_forward_case(std::int64_t rows, std::int64_t d, DType dt) {
  OpCase c{"rmsnorm_forward", describe(dt, {rows, d})};
  c.bind = [=](const Context& ctx) {
    const Tensor x = ctx.to_here(random_tensor({rows, d}, dt, 1)), w = ctx.to_here(random_tensor({d}, DType::f32, 2));
    const Tensor y = ctx.empty({rows, d}, dt), rstd = ctx.empty({rows}, DType::f32);
    return Run{[=] { kernels::rmsnorm_forward(ctx, x, w, 1e-6f, y, rstd); },
               [=] {
                 const Tensor hr = to_host(rstd), hy = to_host(y);
                 return std::vector{Output{"rstd", hr, within(1e-5 * max_abs(hr))},
                                    Output{"y", hy, nn_tol(dt, max_abs(hy), 1e-5)}};
               },
               bytes_of({x, w, y, rstd})};
  };
  return c;
}

struct RmsBackwardSpec {
  std::int64_t rows, d;
  DType dt;
  float eps;
  std::uint32_t seed_x, seed_w, seed_dy, seed_dw0;  // seed_dw0 0: dweight starts at zero
  bool grad = false;
};

// The backward from the CPU forward's rstd on both sides. dx: the row sum is f32 on the GPU (D terms). dweight:
// T terms per column summed in another order (f32 partials vs double): 1e-5 of the largest possible column sum,
// sum_t |dy x rstd| <= T max |dy x rstd|; the same bits run to run.
OpCase rmsnorm_backward_case(const RmsBackwardSpec& s) {
  OpCase c{"rmsnorm_backward", describe(s.dt, {s.rows, s.d}) + " eps " + number(s.eps)};
  struct Host {
    Tensor x, w, dy, dw0, y, rstd;
  };
  const auto host = [=] {
    Host h{random_tensor({s.rows, s.d}, s.dt, s.seed_x), random_tensor({s.d}, DType::f32, s.seed_w),
           random_tensor({s.rows, s.d}, s.dt, s.seed_dy),
           s.seed_dw0 ? random_tensor({s.d}, DType::f32, s.seed_dw0) : Tensor::host_zeros({s.d}, DType::f32),
           Tensor::host({s.rows, s.d}, s.dt), Tensor::host({s.rows}, DType::f32)};
    kernels::rmsnorm_forward(Context::cpu(), h.x, h.w, s.eps, h.y, h.rstd);
    return h;
  };
  c.bind = [=](const Context& ctx) {
    const Host h = host();
    const Tensor dy = ctx.to_here(h.dy), x = ctx.to_here(h.x), w = ctx.to_here(h.w), rstd = ctx.to_here(h.rstd);
    const Tensor dx = ctx.empty({s.rows, s.d}, s.dt), dw = ctx.to_here(h.dw0);
    double mag = 0;
    for (std::int64_t i = 0; i < s.rows * s.d; ++i)
      mag = std::max(mag, std::fabs(value(h.dy, i) * value(h.x, i) * h.rstd.data<float>()[i / s.d]));
    return Run{[=] { kernels::rmsnorm_backward(ctx, dy, x, w, rstd, dx, dw); },
               [=] {
                 const Tensor hdx = to_host(dx);
                 return std::vector{Output{"dx", hdx, nn_tol(s.dt, max_abs(hdx), 1e-5)},
                                    output("dweight", dw, repeatable(within(1e-5 * mag * s.rows)))};
               },
               bytes_of({dy, x, w, rstd, dx, dw, dw})};
  };
  if (s.grad)  // dweight with eps 1e-3
    c.grad = [=] {
      const Host h = host();
      const Context cpu = Context::cpu();
      const Tensor dx = Tensor::host({s.rows, s.d}, DType::f32), dw = h.dw0;
      kernels::rmsnorm_backward(cpu, h.dy, h.x, h.w, h.rstd, dx, dw);
      return GradCheck{[=] {
                         kernels::rmsnorm_forward(cpu, h.x, h.w, s.eps, h.y, h.rstd);
                         return dot(h.dy, h.y);
                       },
                       {{"dx", h.x, dx, 1e-2}, {"dweight", h.w, dw, 1e-3}}};
    };
  return c;
}

// ---------------------------------------------------------------- swiglu

// Forward, then the backward in place on gate_up. Same f32 expression on both sides (kernels/swiglu_math.hpp);
// expf differs by an ulp or two from libm and the GPU may fuse.
OpCase swiglu_case(std::int64_t rows, std::int64_t h, DType dt, std::uint32_t seed_gu, std::uint32_t seed_dout,
                   bool grad) {
  OpCase c{"swiglu", describe(dt, {rows, 2 * h})};
  c.bind = [=](const Context& ctx) {
    const Tensor gu = ctx.to_here(random_tensor({rows, 2 * h}, dt, seed_gu, 2.0f));
    const Tensor dout = ctx.to_here(random_tensor({rows, h}, dt, seed_dout)), out = ctx.empty({rows, h}, dt);
    return Run{[=] {
                 kernels::swiglu_forward(ctx, gu, out);
                 kernels::swiglu_backward(ctx, dout, gu, gu);
               },
               [=] {
                 const Tensor ho = to_host(out), hg = to_host(gu);
                 return std::vector{Output{"out", ho, nn_tol(dt, max_abs(ho), 2e-6)},
                                    Output{"dgate_up", hg, nn_tol(dt, max_abs(hg), 2e-6)}};
               },
               bytes_of({gu, out, dout, gu, gu})};
  };
  if (grad)
    c.grad = [=] {
      const Context cpu = Context::cpu();
      const Tensor gu = random_tensor({rows, 2 * h}, DType::f32, seed_gu, 2.0f);
      const Tensor wo = random_tensor({rows, h}, DType::f32, seed_dout), out = Tensor::host({rows, h}, DType::f32);
      const Tensor dgu = Tensor::host({rows, 2 * h}, DType::f32);
      kernels::swiglu_backward(cpu, wo, gu, dgu);
      return GradCheck{[=] {
                         kernels::swiglu_forward(cpu, gu, out);
                         return dot(wo, out);
                       },
                       {{"dgate_up", gu, dgu, 1e-2}}};
    };
  return c;
}

// ---------------------------------------------------------------- rope

struct RopeSpec {
  Shape shape;
  std::int64_t offset;
  kernels::RopeConfig config;
  std::int64_t max_pos;
  std::vector<std::int32_t> positions;
  DType dt;
  std::uint32_t seed_x, seed_dy;
  bool grad = false;
};

// Forward then backward, in place. |x| <= ~5 (normal data): a rotation is two products and a sum, a few f32 ulps.
OpCase rope_case(const RopeSpec& s) {
  OpCase c{"rope", describe(s.dt, s.shape) + " at " + std::to_string(s.offset) + ", rope_dim " +
                       std::to_string(s.config.rope_dim) + " factor " + number(s.config.factor)};
  c.bind = [=](const Context& ctx) {
    const kernels::RopeTables tab = kernels::rope_tables(ctx, s.config, s.max_pos);
    const Tensor x = ctx.to_here(random_tensor(s.shape, s.dt, s.seed_x)), pos = ctx.to_here(ints(s.positions));
    const Tensor forward = ctx.empty(s.shape, s.dt);
    // The rope slice read and written by each pass, the snapshot's copy, a cos and a sin row per token.
    const double rows = static_cast<double>(x.numel() / s.shape[-1]),
                 slice = rows * s.config.rope_dim * dtype_size(s.dt);
    return Run{[=] {
                 kernels::rope_forward(ctx, x, pos, tab, s.offset);
                 copy(forward, x);
                 kernels::rope_backward(ctx, x, pos, tab, s.offset);
               },
               [=] {
                 const Tensor hf = to_host(forward), hb = to_host(x);
                 return std::vector{Output{"forward", hf, nn_tol(s.dt, max_abs(hf), 1e-6)},
                                    Output{"backward", hb, nn_tol(s.dt, max_abs(hb), 1e-6)}};
               },
               4 * slice + bytes_of({x, x, pos, pos}) + 2 * 2.0 * s.shape[0] * s.config.rope_dim / 2 * 4};
  };
  if (s.grad)
    c.grad = [=] {
      const Context cpu = Context::cpu();
      const kernels::RopeTables tab = kernels::rope_tables(cpu, s.config, s.max_pos);
      const Tensor pos = ints(s.positions), x = random_tensor(s.shape, DType::f32, s.seed_x);
      const Tensor wy = random_tensor(s.shape, DType::f32, s.seed_dy), y = Tensor::host(s.shape, DType::f32);
      const Tensor dx = cpu.to_here(wy);
      kernels::rope_backward(cpu, dx, pos, tab, s.offset);
      return GradCheck{[=] {
                         copy(y, x);
                         kernels::rope_forward(cpu, y, pos, tab, s.offset);
                         return dot(wy, y);
                       },
                       {{"dx", x, dx, 1e-2}}};
    };
  return c;
}

// ---------------------------------------------------------------- cross_entropy

struct CrossEntropySpec {
  std::int64_t rows, v;
  DType dt;
  std::uint32_t seed_logits;
  float scale;
  std::vector<std::int32_t> targets;
  std::vector<float> dloss;
  bool grad = false;
};

// Forward, then the backward in place on the logits from the CPU forward's lse. lse ~ 15: an f32 online sum of V
// exponentials vs a double sum, 2e-6 of |lse| plus 1e-5. dlogits: p = exp(x - lse) <= 1, f32 expf vs libm: 1e-6
// of max(|dloss|, |dlogits|).
OpCase cross_entropy_case(const CrossEntropySpec& s) {
  OpCase c{"cross_entropy", describe(s.dt, {s.rows, s.v})};
  c.bind = [=](const Context& ctx) {
    const Tensor hl = random_tensor({s.rows, s.v}, s.dt, s.seed_logits, s.scale), htg = ints(s.targets);
    const Tensor cpu_lse = Tensor::host({s.rows}, DType::f32);
    kernels::cross_entropy_forward(Context::cpu(), hl, htg, Tensor::host({s.rows}, DType::f32), cpu_lse);
    const Tensor logits = ctx.to_here(hl), tg = ctx.to_here(htg), saved_lse = ctx.to_here(cpu_lse);
    const Tensor dloss = ctx.to_here(floats(s.dloss));
    const Tensor losses = ctx.empty({s.rows}, DType::f32), lse = ctx.empty({s.rows}, DType::f32);
    const double dloss_max = max_abs(floats(s.dloss));
    return Run{[=] {
                 kernels::cross_entropy_forward(ctx, logits, tg, losses, lse);
                 kernels::cross_entropy_backward(ctx, logits, tg, saved_lse, dloss, logits);
               },
               [=] {
                 const Tensor hlse = to_host(lse), hd = to_host(logits);
                 const Tolerance t = within(2e-6 * max_abs(hlse) + 1e-5);
                 return std::vector{Output{"lse", hlse, t}, output("losses", losses, t),
                                    Output{"dlogits", hd, nn_tol(s.dt, std::max(max_abs(hd), dloss_max), 1e-6)}};
               },
               bytes_of({logits, logits, logits, tg, losses, lse})};
  };
  if (s.grad)
    c.grad = [=] {
      const Context cpu = Context::cpu();
      const Tensor logits = random_tensor({s.rows, s.v}, DType::f32, s.seed_logits, s.scale);
      const Tensor tg = ints(s.targets), dloss = floats(s.dloss), dl = Tensor::host({s.rows, s.v}, DType::f32);
      const Tensor losses = Tensor::host({s.rows}, DType::f32), lse = Tensor::host({s.rows}, DType::f32);
      const auto loss = [=] {
        kernels::cross_entropy_forward(cpu, logits, tg, losses, lse);
        return dot(dloss, losses);
      };
      loss();
      kernels::cross_entropy_backward(cpu, logits, tg, lse, dloss, dl);
      return GradCheck{loss, {{"dlogits", logits, dl, 1e-2}}};
    };
  return c;
}

// ---------------------------------------------------------------- adamw

// Three steps with weight decay, a gradient scale and the bf16 copy. The same f32 update on both sides
// (kernels/adamw_math.hpp); the GPU may fuse multiply-adds and sqrtf is correctly rounded on both: a few ulps of
// |p| ~ 1 after three steps.
OpCase adamw_case(std::int64_t n) {
  OpCase c{"adamw", describe(DType::f32, {n}) + ", 3 steps"};
  c.bind = [=](const Context& ctx) {
    const Tensor p = ctx.to_here(random_tensor({n}, DType::f32, 12)), m = ctx.zeros({n}, DType::f32);
    const Tensor v = ctx.zeros({n}, DType::f32), pb = ctx.empty({n}, DType::bf16);
    std::vector<Tensor> grads;
    for (int step = 1; step <= 3; ++step) grads.push_back(ctx.to_here(random_tensor({n}, DType::f32, 13 + step)));
    return Run{[=] {
                 for (int step = 1; step <= 3; ++step) {
                   const kernels::AdamWOptions o{.lr = 1e-3f, .weight_decay = 0.1f, .step = step, .grad_scale = 0.7f};
                   kernels::adamw_step(ctx, p, grads[step - 1], m, v, o, pb);
                 }
               },
               [=] {
                 const Tensor hp = to_host(p), hm = to_host(m), hv = to_host(v);
                 return std::vector{
                     Output{"p", hp, within(1e-6 * max_abs(hp))}, Output{"m", hm, within(1e-6 * max_abs(hm))},
                     Output{"v", hv, within(1e-6 * max_abs(hv))}, output("p_bf16", pb, within(0.0079 * max_abs(hp)))};
               },
               3 * (bytes_of({p, m, v, p, m, v, pb}) + bytes_of({grads[0]}))};
  };
  return c;
}

// One multi-tensor launch over tensors cut from one buffer at odd offsets (the scalar path beside the packed one),
// weight decay on some, the bf16 copy on some, moments in `moments`: three steps. bf16 moments are rounded on
// store, so a last-bit difference in f32 may land on the other side: one bf16 rounding of the largest moment,
// and its effect on p (a step ~lr scaled by 2^-8) on top of the f32 tolerance.
OpCase adamw_multi_case(DType moments) {
  const std::vector<std::pair<std::int64_t, std::int64_t>> spans = {{0, 1 << 20}, {(1 << 20) + 1, 1001}, {(1 << 20) + 1003, 3},
                                                                    {(1 << 20) + 1008, 40000}, {(1 << 20) + 41008, 1}};
  const std::int64_t n = (1 << 20) + 41009;
  OpCase c{"adamw_multi", describe(DType::f32, {n}) + " in 5 tensors, " + dtype_name(moments) + " moments, 3 steps"};
  c.bind = [=](const Context& ctx) {
    const Tensor p = ctx.to_here(random_tensor({n}, DType::f32, 22)), m = ctx.zeros({n}, moments);
    const Tensor v = ctx.zeros({n}, moments), pb = ctx.zeros({n}, DType::bf16);
    std::vector<Tensor> grads;
    for (int step = 1; step <= 3; ++step) grads.push_back(ctx.to_here(random_tensor({n}, DType::f32, 23 + step)));
    return Run{[=] {
                 for (int step = 1; step <= 3; ++step) {
                   std::vector<kernels::AdamWTensor> ts;
                   for (std::size_t i = 0; i < spans.size(); ++i) {
                     const auto [lo, len] = spans[i];
                     const auto at = [&](const Tensor& t) { return t.slice(lo, lo + len); };
                     ts.push_back({at(p), at(grads[step - 1]), at(m), at(v), i % 2 == 0 ? at(pb) : Tensor{}, i != 1});
                   }
                   kernels::adamw_multi_step(ctx, ts, {.lr = 1e-3f, .weight_decay = 0.1f, .step = step, .grad_scale = 0.7f});
                 }
               },
               [=] {
                 const Tensor hp = to_host(p);
                 const double f32_p = 1e-6 * max_abs(hp), bf16_p = moments == DType::bf16 ? 3e-5 * max_abs(hp) : 0.0;
                 return std::vector{Output{"p", hp, within(f32_p + bf16_p)}, output("m", m, nn_tol(moments, max_abs(to_host(m)), 1e-6)),
                                    output("v", v, nn_tol(moments, max_abs(to_host(v)), 1e-6)),
                                    output("p_bf16", pb, within(0.0079 * max_abs(hp)))};
               },
               3 * (bytes_of({p, p, grads[0], pb}) + 2 * bytes_of({m, v}))};
  };
  c.naive = [=] {  // the textbook update in double per element, bf16 moments rounded after each step
    const Tensor p0 = random_tensor({n}, DType::f32, 22);
    std::vector<Tensor> grads;
    for (int step = 1; step <= 3; ++step) grads.push_back(random_tensor({n}, DType::f32, 23 + step));
    Tensor hp = Tensor::host({n}, DType::f64), hm = Tensor::host_zeros({n}, DType::f64), hv = Tensor::host_zeros({n}, DType::f64);
    for (std::int64_t i = 0; i < n; ++i) hp.data<double>()[i] = value(p0, i);  // elements between the tensors stay
    const auto stored = [&](double x) { return moments == DType::bf16 ? double(to_float(to_bf16(float(x)))) : x; };
    for (std::size_t t = 0; t < spans.size(); ++t)
      for (std::int64_t i = spans[t].first; i < spans[t].first + spans[t].second; ++i) {
        double pi = value(p0, i), mi = 0, vi = 0;
        for (int step = 1; step <= 3; ++step) {
          const double g = 0.7 * value(grads[step - 1], i);
          const double m1 = 0.9 * mi + 0.1 * g, v1 = 0.95 * vi + 0.05 * g * g;
          pi = pi * (t != 1 ? 1 - 1e-3 * 0.1 : 1.0) -
               1e-3 / (1 - std::pow(0.9, step)) * m1 / (std::sqrt(v1 / (1 - std::pow(0.95, step))) + 1e-8);
          mi = stored(m1);
          vi = stored(v1);
        }
        hp.data<double>()[i] = pi, hm.data<double>()[i] = mi, hv.data<double>()[i] = vi;
      }
    // f32 constants (0.9f, 0.7f) and roundings: ~1e-6 of the largest moment, a few ulps of |p| <~ 5. bf16
    // moments: a rounding that f32 and double place on either side carries into the next steps' moments (one
    // bf16 ulp of the largest, 2^-8) and into p (lr x that ulp over sqrt(v): ~1e-5 a step).
    const bool bf = moments == DType::bf16;
    double mm = 0, mv = 0;
    for (std::int64_t i = 0; i < n; ++i) mm = std::max(mm, std::fabs(hm.data<double>()[i])), mv = std::max(mv, hv.data<double>()[i]);
    return std::vector{Output{"p", hp, within(bf ? 5e-5 : 1e-5)}, Output{"m", hm, within((bf ? 0.0079 : 1e-6) * mm)},
                       Output{"v", hv, within((bf ? 0.0079 : 1e-6) * mv)}};
  };
  return c;
}

// ---------------------------------------------------------------- embedding

struct EmbeddingSpec {
  std::int64_t vocab, d;
  DType dt;  // of the output rows and their gradient
  std::vector<std::int32_t> ids;
  std::uint32_t seed_table, seed_dout, seed_dtable0;  // seed_dtable0 0: dtable starts at zero
  bool grad = false;
};

// A copy with one conversion (bit-exact), and the backward that sums each id's rows in token order in f32 on
// both sides (adds only, nothing to fuse), then adds once: bit-exact.
OpCase embedding_case(const EmbeddingSpec& s) {
  const std::int64_t rows = static_cast<std::int64_t>(s.ids.size());
  OpCase c{"embedding", describe(DType::f32, {s.vocab, s.d}) + " table, " + describe(s.dt, {rows, s.d}) + " rows"};
  const auto dtable0 = [=] {
    return s.seed_dtable0 ? random_tensor({s.vocab, s.d}, DType::f32, s.seed_dtable0)
                          : Tensor::host_zeros({s.vocab, s.d}, DType::f32);
  };
  c.bind = [=](const Context& ctx) {
    const Tensor table = ctx.to_here(random_tensor({s.vocab, s.d}, DType::f32, s.seed_table)),
                 ids = ctx.to_here(ints(s.ids));
    const Tensor dout = ctx.to_here(random_tensor({rows, s.d}, s.dt, s.seed_dout)), dtable = ctx.to_here(dtable0());
    const Tensor out = ctx.empty({rows, s.d}, s.dt);
    // Rows of the table read; rows of dtable read and written.
    return Run{[=] {
                 kernels::embedding_forward(ctx, table, ids, out);
                 kernels::embedding_backward(ctx, dout, ids, dtable);
               },
               [=] { return std::vector{output("out", out, bit_exact()), output("dtable", dtable, bit_exact())}; },
               bytes_of({out, dout, ids, ids}) + 3 * 4.0 * rows * s.d};
  };
  if (s.grad)
    c.grad = [=] {
      const Context cpu = Context::cpu();
      const Tensor table = random_tensor({s.vocab, s.d}, DType::f32, s.seed_table), ids = ints(s.ids);
      const Tensor wo = random_tensor({rows, s.d}, DType::f32, s.seed_dout), dtable = dtable0();
      const Tensor out = Tensor::host({rows, s.d}, DType::f32);
      kernels::embedding_backward(cpu, wo, ids, dtable);
      return GradCheck{[=] {
                         kernels::embedding_forward(cpu, table, ids, out);
                         return dot(wo, out);
                       },
                       {{"dtable", table, dtable, 1e-2}}};
    };
  return c;
}

// ---------------------------------------------------------------- the table

// Row shapes: the bench model's row (2048, packed 16-byte path) and an odd width (scalar fallback).
constexpr std::pair<std::int64_t, std::int64_t> kRowShapes[] = {{300, 2048}, {37, 61}};
constexpr DType kFloats[] = {DType::f32, DType::bf16};

void add_norm_and_activation_cases(std::vector<OpCase>& out) {
  for (DType dt : kFloats)
    for (auto [rows, d] : kRowShapes) out.push_back(rmsnorm_forward_case(rows, d, dt));
  for (DType dt : kFloats)
    for (auto [rows, d] : kRowShapes)
      out.push_back(rmsnorm_backward_case(
          {.rows = rows, .d = d, .dt = dt, .eps = 1e-6f, .seed_x = 3, .seed_w = 4, .seed_dy = 5, .seed_dw0 = 6}));
  out.push_back(rmsnorm_backward_case({.rows = 4, .d = 8, .dt = DType::f32, .eps = 1e-5f, .seed_x = 1, .seed_w = 2,
                                       .seed_dy = 3, .seed_dw0 = 0, .grad = true}));
  for (DType dt : kFloats)
    for (auto [rows, h] : {std::pair<std::int64_t, std::int64_t>{129, 1408}, {17, 45}})
      out.push_back(swiglu_case(rows, h, dt, 7, 8, false));
  out.push_back(swiglu_case(3, 5, DType::f32, 4, 5, true));
}

void add_rope_cases(std::vector<OpCase>& out) {
  // q: [T, heads, 192] with the rope slice at 128 (packed); kv_a output row [T, 576] at 512; an odd 2-D layout
  // (row 67, offset 3) for the scalar fallback. YaRN tables over 8192 positions.
  const kernels::RopeConfig yarn{.rope_dim = 64, .factor = 40.0};
  const std::pair<Shape, std::int64_t> layouts[] = {{{64, 16, 192}, 128}, {{64, 576}, 512}, {{64, 67}, 3}};
  for (DType dt : kFloats)
    for (const auto& [shape, offset] : layouts)
      out.push_back(rope_case({.shape = shape, .offset = offset, .config = yarn, .max_pos = 8192,
                               .positions = spread_ids(64, 8192, 1), .dt = dt, .seed_x = 9, .seed_dy = 0}));
  // Head slices of a small row, plain RoPE, odd positions.
  out.push_back(rope_case({.shape = {3, 2, 10},
                           .offset = 2,
                           .config = {.rope_dim = 6},
                           .max_pos = 8,
                           .positions = {1, 3, 5},
                           .dt = DType::f32,
                           .seed_x = 6,
                           .seed_dy = 7,
                           .grad = true}));
}

void add_loss_and_optimizer_cases(std::vector<OpCase>& out) {
  for (DType dt : kFloats)
    for (auto [rows, v] : {std::pair<std::int64_t, std::int64_t>{8, 102400}, {5, 1001}}) {
      std::vector<std::int32_t> targets = spread_ids(rows, v, 2);
      targets[1] = -1;                         // an ignored token
      targets[2] = kernels::kTargetElsewhere;  // a target in another vocabulary shard
      const Tensor dloss = random_tensor({rows}, DType::f32, 11);
      out.push_back(cross_entropy_case({.rows = rows,
                                        .v = v,
                                        .dt = dt,
                                        .seed_logits = 10,
                                        .scale = 3.0f,
                                        .targets = targets,
                                        .dloss = std::vector<float>(dloss.data<float>(), dloss.data<float>() + rows)}));
    }
  out.push_back(cross_entropy_case({.rows = 3, .v = 7, .dt = DType::f32, .seed_logits = 8, .scale = 2.0f,
                                    .targets = {4, -1, 0}, .dloss = {0.7f, 0.9f, -1.3f}, .grad = true}));
  for (std::int64_t n : {1 << 20, 1001}) out.push_back(adamw_case(n));
  for (DType moments : {DType::f32, DType::bf16}) out.push_back(adamw_multi_case(moments));
}

void add_embedding_cases(std::vector<OpCase>& out) {
  for (DType dt : kFloats)
    for (auto [vocab, d] : {std::pair<std::int64_t, std::int64_t>{1000, 2048}, {50, 33}}) {
      std::vector<std::int32_t> ids = spread_ids(777, vocab, 3);
      for (std::size_t t = 0; t < ids.size(); t += 3) ids[t] = 7;   // one long run
      for (std::size_t t = 1; t < ids.size(); t += 10) ids[t] = -1;  // rows of another shard
      out.push_back(embedding_case(
          {.vocab = vocab, .d = d, .dt = dt, .ids = ids, .seed_table = 14, .seed_dout = 15, .seed_dtable0 = 16}));
    }
  // Id 2 unused: its gradient must stay 0.
  out.push_back(embedding_case({.vocab = 5, .d = 4, .dt = DType::f32, .ids = {1, 4, 1, 0, 1, 3}, .seed_table = 9,
                                .seed_dout = 10, .seed_dtable0 = 0, .grad = true}));
}

// ---------------------------------------------------------------- gather_rows

// Copies move bits: the gathered rows are the CPU's exactly, in 16-byte packs (a bench KV cache's
// [slots, L, 512 + 64] rows) and element by element (odd widths); rows repeat.
OpCase gather_rows_case(const Shape& src_shape, DType dt) {
  const std::vector<std::int32_t> picks{5, 0, 63, 17, 17, 2};
  Shape out_shape = src_shape;
  out_shape[0] = static_cast<std::int64_t>(picks.size());
  OpCase c{"gather_rows", describe(dt, src_shape) + " -> " + out_shape.str()};
  c.bind = [=](const Context& ctx) {
    const Tensor src = ctx.to_here(random_tensor(src_shape, dt, 41)), rows = ctx.to_here(ints(picks));
    const Tensor dst = ctx.empty(out_shape, dt);
    return Run{[=] { kernels::gather_rows(ctx, src, rows, dst); },
               [=] { return std::vector{output("dst", dst, bit_exact())}; }, 2.0 * static_cast<double>(dst.nbytes())};
  };
  return c;
}

void add_gather_rows_cases(std::vector<OpCase>& out) {
  for (DType dt : kFloats)
    for (const Shape& s : {Shape{64, 300, 576}, Shape{64, 37}, Shape{64, 3, 5}}) out.push_back(gather_rows_case(s, dt));
}
}  // namespace

void add_nn_cases(std::vector<OpCase>& out) {
  add_norm_and_activation_cases(out);
  add_rope_cases(out);
  add_loss_and_optimizer_cases(out);
  add_embedding_cases(out);
  add_gather_rows_cases(out);
}

}  // namespace r1::test
