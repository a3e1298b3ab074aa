// Op cases of the dense building blocks: GEMM, grouped GEMM, elementwise ops, reductions, random fills, FP8.
#include <cmath>
#include <iterator>
#include <vector>

#include "kernels/elementwise.hpp"
#include "kernels/fp8.hpp"
#include "kernels/gemm.hpp"
#include "kernels/grouped_gemm.hpp"
#include "kernels/op_cases.hpp"
#include "kernels/random.hpp"
#include "kernels/reduce.hpp"
#include "kernels/test_util.hpp"

namespace r1::test {

namespace {
using kernels::Context;

// ---------------------------------------------------------------- GEMM

// How far CUDA may lie from the CPU, as a fraction of the scale of the result:
//  - magnitude: |A| |B| K, the largest |C| could reach. f32 (exact FP32 FMA on the GPU): only the summation
//    order differs, ~K ulp of it; 1e-5 holds with margin. bf16 inputs are identical on both sides with f32
//    accumulation, so the same; a bf16 C adds one rounding (2^-8 relative) of max |C|.
//  - tf32: 10-bit mantissa inputs, ~2^-11 relative per product: 2e-3 |A| |B| sqrt(K).
//  - result: 1e-5 (1 + max |C|), plus one bf16 rounding of a bf16 C: the scale of alpha AB + beta C0.
enum class GemmTol { magnitude, tf32, result };

struct GemmSpec {
  Shape a, b, c;
  bool ta, tb;
  DType in = DType::f32, out = DType::f32;
  float alpha = 1.0f, beta = 0.0f;
  std::uint32_t seed_a = 1, seed_b = 2, seed_c0 = 0;  // seed_c0 0: C starts uninitialised (beta 0)
  bool tf32 = false;
  GemmTol tol = GemmTol::magnitude;
  bool naive = false;  // the reference mode's double triple loop
};

// C = alpha op(A) op(B) + beta C0 in double, rounded to f32.
Tensor naive_gemm(const Tensor& a, const Tensor& b, const Tensor& c0, const kernels::GemmOptions& o) {
  const kernels::GemmProblem p = kernels::check_gemm(a, b, c0, o);
  Tensor c = Tensor::host(c0.shape(), DType::f32);
  for (std::int64_t bt = 0; bt < p.batch; ++bt)
    for (std::int64_t i = 0; i < p.m; ++i)
      for (std::int64_t j = 0; j < p.n; ++j) {
        double acc = 0;
        for (std::int64_t l = 0; l < p.k; ++l) {
          const std::int64_t ia = bt * p.stride_a + (o.trans_a ? l * p.m + i : i * p.k + l);
          const std::int64_t ib = bt * p.stride_b + (o.trans_b ? j * p.k + l : l * p.n + j);
          acc += value(a, ia) * value(b, ib);
        }
        const std::int64_t ic = bt * p.stride_c + i * p.n + j;
        c.data<float>()[ic] = static_cast<float>(o.alpha * acc + (o.beta != 0 ? o.beta * value(c0, ic) : 0.0));
      }
  return c;
}

double gemm_result_tol(DType out, double mag) { return 1e-5 * (1 + mag) + (out == DType::bf16 ? mag / 256 : 0.0); }

OpCase gemm_case(const GemmSpec& s) {
  const std::string config = std::string(dtype_name(s.in)) + " to " + dtype_name(s.out) + " A " + s.a.str() +
                             (s.ta ? "T" : "") + " B " + s.b.str() + (s.tb ? "T" : "") + " alpha " + number(s.alpha) +
                             " beta " + number(s.beta) + (s.seed_c0 ? " over C0" : "") + (s.tf32 ? " tf32" : "");
  OpCase c{"gemm", config};
  const kernels::GemmOptions o{
      .trans_a = s.ta, .trans_b = s.tb, .alpha = s.alpha, .beta = s.beta, .allow_tf32 = s.tf32};
  const auto c0 = [s] { return s.seed_c0 ? random_tensor(s.c, s.out, s.seed_c0) : Tensor::host(s.c, s.out); };
  c.bind = [s, o, c0](const Context& ctx) {
    const Tensor ha = random_tensor(s.a, s.in, s.seed_a), hb = random_tensor(s.b, s.in, s.seed_b);
    const Tensor a = ctx.to_here(ha), b = ctx.to_here(hb), cc = ctx.to_here(c0());
    const std::int64_t k = s.ta ? s.a[-2] : s.a[-1];
    const double mag = max_abs(ha) * max_abs(hb) * static_cast<double>(k);
    Run r{[=] { kernels::gemm(ctx, a, b, cc, o); },
          [=] {
            const Tensor hc = to_host(cc);
            const double bf16_round = s.out == DType::bf16 ? 0.0079 * max_abs(hc) : 0.0;
            switch (s.tol) {
              case GemmTol::magnitude: return std::vector{Output{"C", hc, within(1e-5 * mag + bf16_round)}};
              case GemmTol::tf32: return std::vector{Output{"C", hc, within(2e-3 * mag / std::sqrt(double(k)))}};
              case GemmTol::result: break;
            }
            return std::vector{Output{"C", hc, within(gemm_result_tol(s.out, max_abs(hc)))}};
          },
          bytes_of({a, b, cc}) + (s.beta != 0 ? static_cast<double>(cc.nbytes()) : 0.0),
          2.0 * static_cast<double>(cc.numel()) * k};
    return r;
  };
  if (s.naive)  // inputs are exact in both; only accumulation order and a bf16 C's rounding differ
    c.naive = [s, o, c0] {
      const Tensor expect = naive_gemm(random_tensor(s.a, s.in, s.seed_a), random_tensor(s.b, s.in, s.seed_b), c0(), o);
      return std::vector{Output{"C", expect, within(gemm_result_tol(s.out, max_abs(expect)))}};
    };
  return c;
}

struct GemmShapes {
  Shape a, b, c;
  bool ta, tb;
};

void add_gemm_cases(std::vector<OpCase>& out) {
  // GPU-sized: transposes, batches, shared operands (stride-0 batches), one element, a wide problem.
  const GemmShapes large[] = {
      {{64, 96}, {96, 80}, {64, 80}, false, false},         {{96, 64}, {96, 80}, {64, 80}, true, false},
      {{64, 96}, {80, 96}, {64, 80}, false, true},          {{96, 64}, {80, 96}, {64, 80}, true, true},
      {{3, 33, 65}, {3, 65, 17}, {3, 33, 17}, false, false}, {{3, 65, 33}, {3, 17, 65}, {3, 33, 17}, true, true},
      {{4, 40, 64}, {48, 64}, {4, 40, 48}, false, true},    // shared weight (folded into one GEMM)
      {{4, 64, 40}, {48, 64}, {4, 40, 48}, true, true},     // shared weight, transposed A: stride-0 batch
      {{40, 64}, {4, 64, 48}, {4, 40, 48}, false, false},   // shared A: stride-0 batch
      {{1, 1}, {1, 1}, {1, 1}, false, false},               {{512, 1024}, {768, 1024}, {512, 768}, false, true},
  };
  for (const auto& g : large)
    for (float beta : {0.0f, 0.5f})
      out.push_back(gemm_case({.a = g.a, .b = g.b, .c = g.c, .ta = g.ta, .tb = g.tb, .alpha = 1.25f, .beta = beta,
                               .seed_a = 1, .seed_b = 2, .seed_c0 = 3}));
  for (const auto& g : large)
    for (DType o : {DType::f32, DType::bf16})
      out.push_back(gemm_case({.a = g.a, .b = g.b, .c = g.c, .ta = g.ta, .tb = g.tb, .in = DType::bf16, .out = o,
                               .seed_a = 4, .seed_b = 5}));
  out.push_back(gemm_case({.a = {256, 512}, .b = {384, 512}, .c = {256, 384}, .ta = false, .tb = true, .seed_a = 6,
                           .seed_b = 7, .tf32 = true, .tol = GemmTol::tf32}));
  // Against the naive loop: every transpose and batching case at small sizes, alpha and beta, bf16 in and out.
  const GemmShapes small[] = {
      {{5, 7}, {7, 3}, {5, 3}, false, false},       {{7, 5}, {7, 3}, {5, 3}, true, false},
      {{5, 7}, {3, 7}, {5, 3}, false, true},        {{7, 5}, {3, 7}, {5, 3}, true, true},
      {{4, 5, 7}, {4, 7, 3}, {4, 5, 3}, false, false}, {{4, 7, 5}, {4, 3, 7}, {4, 5, 3}, true, true},
      {{4, 5, 7}, {3, 7}, {4, 5, 3}, false, true},  // shared weight, folded batch
      {{5, 7}, {4, 7, 3}, {4, 5, 3}, false, false}, // shared A
      {{1, 1}, {1, 1}, {1, 1}, false, false},       {{33, 64}, {64, 17}, {33, 17}, false, false},
  };
  struct Mix {
    DType in, out;
    float alpha, beta;
  };
  for (const Mix& m : {Mix{DType::f32, DType::f32, 1.0f, 0.0f}, Mix{DType::f32, DType::f32, -0.5f, 2.0f},
                       Mix{DType::bf16, DType::f32, 1.0f, 0.0f}, Mix{DType::bf16, DType::bf16, 1.5f, 1.0f}})
    for (const auto& g : small)
      out.push_back(gemm_case({.a = g.a, .b = g.b, .c = g.c, .ta = g.ta, .tb = g.tb, .in = m.in, .out = m.out,
                               .alpha = m.alpha, .beta = m.beta, .seed_a = 1, .seed_b = 2, .seed_c0 = 3,
                               .tol = GemmTol::result, .naive = true}));
}

// ---------------------------------------------------------------- grouped GEMM

// Each group is one kernels::gemm call on both sides: the GEMM tolerance, 1e-5 |A| |B| K, per product. Outputs
// are f32 whatever the operands' dtype; dW accumulates onto dW0 (beta 1).
struct GroupedSpec {
  std::vector<std::int64_t> offsets;
  std::int64_t k, n;
  DType dt;
  std::uint32_t seed_in, seed_w, seed_dout, seed_dw0;  // seed_dw0 0: dW starts at zero
  bool grad = false;                                   // finite differences of dgrad and wgrad
};

OpCase grouped_gemm_case(const GroupedSpec& s) {
  const std::int64_t e = static_cast<std::int64_t>(s.offsets.size()) - 1, m = s.offsets.back(), k = s.k, n = s.n;
  std::string offsets;
  for (std::int64_t o : s.offsets) {
    if (!offsets.empty()) offsets += ',';
    offsets += std::to_string(o);
  }
  OpCase c{"grouped_gemm", describe(s.dt, {m, k}) + " x W " + Shape{e, n, k}.str() + " offsets " + offsets};
  const auto inputs = [=] {
    return std::vector{
        random_tensor({m, k}, s.dt, s.seed_in), random_tensor({e, n, k}, s.dt, s.seed_w),
        random_tensor({m, n}, s.dt, s.seed_dout),
        s.seed_dw0 ? random_tensor({e, n, k}, DType::f32, s.seed_dw0) : Tensor::host_zeros({e, n, k}, DType::f32)};
  };
  c.bind = [=](const Context& ctx) {
    const std::vector<Tensor> h = inputs();
    const Tensor in = ctx.to_here(h[0]), w = ctx.to_here(h[1]), dout = ctx.to_here(h[2]), dw = ctx.to_here(h[3]);
    const Tensor out = ctx.empty({m, n}, DType::f32), din = ctx.empty({m, k}, DType::f32);
    const double a = max_abs(h[0]), b = max_abs(h[1]), g = max_abs(h[2]);
    return Run{[=] {
                 kernels::grouped_gemm(ctx, in, w, out, s.offsets, {.trans_b = true});
                 kernels::grouped_gemm(ctx, dout, w, din, s.offsets);
                 kernels::grouped_gemm(ctx, dout, in, dw, s.offsets, {.trans_a = true, .beta = 1.0f});
               },
               [=] {
                 return std::vector{output("forward", out, within(1e-5 * a * b * k)),
                                    output("dgrad", din, within(1e-5 * g * b * n)),
                                    output("wgrad", dw, within(1e-5 * g * a * m))};
               },
               bytes_of({in, w, dout, out, din, dw, dw}), 3 * 2.0 * m * n * k};
  };
  if (s.grad)
    c.grad = [=] {
      const std::vector<Tensor> h = inputs();
      const Tensor din = Tensor::host({m, k}, DType::f32), dw = h[3], out = Tensor::host({m, n}, DType::f32);
      const Context cpu = Context::cpu();
      kernels::grouped_gemm(cpu, h[2], h[1], din, s.offsets);
      kernels::grouped_gemm(cpu, h[2], h[0], dw, s.offsets, {.trans_a = true, .beta = 1.0f});
      return GradCheck{[=] {
                         kernels::grouped_gemm(cpu, h[0], h[1], out, s.offsets, {.trans_b = true});
                         return dot(h[2], out);
                       },
                       {{"dgrad", h[0], din}, {"wgrad", h[1], dw}}};
    };
  return c;
}

// Decode-sized groups (64 experts, 0-40 rows each, a third of them empty) in the operands' dtype: on the GPU the
// single grouped launch. Both sides round C to the dtype, so bf16 adds one rounding of C (2^-8 relative).
OpCase grouped_gemm_one_launch_case(DType dt, float beta) {
  const std::int64_t e = 64, k = 320, n = 176;
  std::vector<std::int64_t> off{0};
  for (std::int64_t x = 0; x < e; ++x) off.push_back(off.back() + (x % 3 == 1 ? 0 : (x * 7) % 41));
  const std::int64_t m = off.back();
  OpCase c{"grouped_gemm", describe(dt, {m, k}) + " x 64 small experts, beta " + number(beta)};
  c.bind = [=](const Context& ctx) {
    const Tensor hin = random_tensor({m, k}, dt, 21), hw = random_tensor({e, n, k}, dt, 22);
    const Tensor hdout = random_tensor({m, n}, dt, 23);
    const Tensor in = ctx.to_here(hin), w = ctx.to_here(hw), dout = ctx.to_here(hdout);
    const Tensor out = ctx.to_here(random_tensor({m, n}, dt, 24)), din = ctx.to_here(random_tensor({m, k}, dt, 25));
    // The case exists for the one-launch path: on a CUDA context it must take it.
    R1_CHECK(!ctx.is_cuda() || kernels::one_launch(ctx, in, out, off, {.trans_b = true}), "grouped_gemm ",
             dtype_name(dt), ": decode-sized groups did not take the single grouped launch");
    const double a = max_abs(hin), b = max_abs(hw), g = max_abs(hdout), round = dt == DType::bf16 ? 0x1p-8 : 0.0;
    return Run{[=] {
                 kernels::grouped_gemm(ctx, in, w, out, off, {.trans_b = true, .beta = beta});
                 kernels::grouped_gemm(ctx, dout, w, din, off, {.beta = beta});
               },
               [=] {
                 const Tensor hout = to_host(out), hdin = to_host(din);
                 return std::vector{Output{"forward", hout, within(1e-5 * a * b * k + round * max_abs(hout))},
                                    Output{"dgrad", hdin, within(1e-5 * g * b * n + round * max_abs(hdin))}};
               },
               bytes_of({in, w, dout, out, din}), 2 * 2.0 * m * n * k};
  };
  return c;
}

void add_grouped_gemm_cases(std::vector<OpCase>& out) {
  for (const auto& off : {std::vector<std::int64_t>{0, 100, 200, 300, 400, 500, 600, 700, 800},
                          std::vector<std::int64_t>{0, 500, 500, 650, 700, 700, 780, 799, 800}})
    for (DType dt : {DType::f32, DType::bf16})
      out.push_back(grouped_gemm_case({.offsets = off, .k = 256, .n = 192, .dt = dt, .seed_in = 11, .seed_w = 12,
                                       .seed_dout = 13, .seed_dw0 = 14}));
  out.push_back(grouped_gemm_case({.offsets = {0, 4, 4, 7, 11}, .k = 5, .n = 6, .dt = DType::f32, .seed_in = 16,
                                   .seed_w = 17, .seed_dout = 18, .seed_dw0 = 0, .grad = true}));
  for (DType dt : {DType::bf16, DType::f32})
    for (float beta : {0.0f, 1.0f}) out.push_back(grouped_gemm_one_launch_case(dt, beta));
}

// ---------------------------------------------------------------- elementwise

// y += alpha x, then (when scale_by != 1) y *= scale_by. Same f32 arithmetic on both sides; the GPU may contract
// a*x+y into one FMA (one rounding fewer): 8e-6 absolute for f32 y on N(0,1) data, one bf16 rounding of values up
// to ~8 for bf16 y.
struct AxpySpec {
  std::int64_t n;
  DType tx, ty;
  float alpha, scale_by;
  std::uint32_t seed_x, seed_y;
  bool naive = false;
};

OpCase axpy_case(const AxpySpec& s) {
  OpCase c{s.scale_by != 1.0f ? "axpy_scale" : "axpy",
           std::string(dtype_name(s.tx)) + " x, " + describe(s.ty, {s.n}) + " y, alpha " + number(s.alpha)};
  c.bind = [=](const Context& ctx) {
    const Tensor x = ctx.to_here(random_tensor({s.n}, s.tx, s.seed_x)),
                 y = ctx.to_here(random_tensor({s.n}, s.ty, s.seed_y));
    return Run{[=] {
                 kernels::axpy(ctx, s.alpha, x, y);
                 if (s.scale_by != 1.0f) kernels::scale(ctx, s.scale_by, y);
               },
               [=] { return std::vector{output("y", y, within(s.ty == DType::f32 ? 1e-6 * 8 : 0.0079 * 8))}; },
               bytes_of({x, y, y})};
  };
  if (s.naive)  // f32 arithmetic, then the rounding to y's dtype
    c.naive = [=] {
      const Tensor x = random_tensor({s.n}, s.tx, s.seed_x), y0 = random_tensor({s.n}, s.ty, s.seed_y);
      Tensor expect = Tensor::host({s.n}, DType::f32);
      for (std::int64_t i = 0; i < s.n; ++i) {
        const float v = static_cast<float>(value(y0, i)) + s.alpha * static_cast<float>(value(x, i));
        expect.data<float>()[i] = s.ty == DType::bf16 ? to_float(to_bf16(v)) : v;
      }
      return std::vector{Output{"y", expect, within(1e-6, 1e-6)}};
    };
  return c;
}

// One rounding by the same rule on both sides: bit-exact.
OpCase cast_case(DType to) {
  const Shape s{4099};
  OpCase c{"cast", "f32 -> " + describe(to, s)};
  c.bind = [=](const Context& ctx) {
    const Tensor x = ctx.to_here(random_tensor(s, DType::f32, 10, 100.0f)), y = ctx.empty(s, to);
    return Run{[=] { kernels::cast(ctx, x, y); }, [=] { return std::vector{output("y", y, bit_exact())}; },
               bytes_of({x, y})};
  };
  return c;
}

OpCase fill_case() {
  const Shape s{777};
  OpCase c{"fill", describe(DType::bf16, s) + " with -1.5"};
  c.bind = [=](const Context& ctx) {
    const Tensor x = ctx.empty(s, DType::bf16);
    return Run{[=] { kernels::fill(ctx, x, -1.5f); }, [=] { return std::vector{output("x", x, bit_exact())}; },
               bytes_of({x})};
  };
  c.naive = [=] {
    Tensor x = Tensor::host(s, DType::bf16);
    for (std::int64_t i = 0; i < s.numel(); ++i) x.data<bf16>()[i] = to_bf16(-1.5f);
    return std::vector{Output{"x", x, bit_exact()}};
  };
  return c;
}

void add_elementwise_cases(std::vector<OpCase>& out) {
  for (DType tx : {DType::f32, DType::bf16})
    for (DType ty : {DType::f32, DType::bf16})
      out.push_back(
          axpy_case({.n = 100003, .tx = tx, .ty = ty, .alpha = 0.3f, .scale_by = -2.0f, .seed_x = 8, .seed_y = 9}));
  for (DType tx : {DType::f32, DType::bf16})
    for (DType ty : {DType::f32, DType::bf16})
      out.push_back(axpy_case(
          {.n = 1000, .tx = tx, .ty = ty, .alpha = -0.75f, .scale_by = 1.0f, .seed_x = 1, .seed_y = 2, .naive = true}));
  for (DType to : {DType::bf16, DType::f8e4m3, DType::f32}) out.push_back(cast_case(to));
  out.push_back(fill_case());
}

// ---------------------------------------------------------------- reductions

constexpr kernels::ReduceOp kReduceOps[] = {kernels::ReduceOp::sum, kernels::ReduceOp::sum_squares,
                                            kernels::ReduceOp::max_abs};

// Both backends accumulate in double and round once to f32: they agree to f32 rounding of the larger scale,
// sqrt(n) + |sum| for a sum of n N(0,1) terms, |value| otherwise.
Tolerance reduce_tol(kernels::ReduceOp op, std::int64_t n) {
  return within((op == kernels::ReduceOp::sum ? 2e-7 * std::sqrt(static_cast<double>(n)) : 0.0) + 1e-30, 2e-7);
}

// sum, sum of squares and max |x| of x[n]; the same bits run to run on the GPU.
OpCase reduce_case(std::int64_t n, DType dt, std::uint32_t seed, bool naive) {
  OpCase c{"reduce", describe(dt, {n})};
  c.bind = [=](const Context& ctx) {
    const Tensor x = ctx.to_here(random_tensor({n}, dt, seed));
    std::vector<Tensor> values;
    for (std::size_t i = 0; i < std::size(kReduceOps); ++i) values.push_back(ctx.empty({1}, DType::f32));
    return Run{[=] {
                 for (std::size_t i = 0; i < values.size(); ++i) kernels::reduce(ctx, kReduceOps[i], x, values[i]);
               },
               [=] {
                 std::vector<Output> outs;
                 for (std::size_t i = 0; i < values.size(); ++i)
                   outs.push_back(output(kernels::reduce_op_name(kReduceOps[i]), values[i],
                                         repeatable(reduce_tol(kReduceOps[i], n))));
                 return outs;
               },
               3 * bytes_of({x})};
  };
  if (naive)  // a double loop; max |x| exactly
    c.naive = [=] {
      const Tensor x = random_tensor({n}, dt, seed);
      double s = 0, s2 = 0, m = 0;
      for (std::int64_t i = 0; i < n; ++i) {
        const double v = value(x, i);
        s += v;
        s2 += v * v;
        m = std::max(m, std::fabs(v));
      }
      Tensor hs = Tensor::host({1}, DType::f64), hs2 = Tensor::host({1}, DType::f64),
             hm = Tensor::host({1}, DType::f32);
      hs.data<double>()[0] = s;
      hs2.data<double>()[0] = s2;
      hm.data<float>()[0] = static_cast<float>(m);
      return std::vector{Output{"sum", hs, within(1e-6 * std::max(1.0, std::fabs(s) + std::sqrt(double(n))))},
                         Output{"sum_squares", hs2, within(1e-6 * s2)}, Output{"max_abs", hm, bit_exact()}};
    };
  return c;
}

// One reduction per row, each op into f32[rows].
OpCase reduce_rows_case(std::int64_t rows, std::int64_t cols, DType dt) {
  OpCase c{"reduce_rows", describe(dt, {rows, cols})};
  c.bind = [=](const Context& ctx) {
    const Tensor x = ctx.to_here(random_tensor({rows, cols}, dt, 12));
    std::vector<Tensor> values;
    for (std::size_t i = 0; i < std::size(kReduceOps); ++i) values.push_back(ctx.empty({rows}, DType::f32));
    return Run{[=] {
                 for (std::size_t i = 0; i < values.size(); ++i) kernels::reduce_rows(ctx, kReduceOps[i], x, values[i]);
               },
               [=] {
                 std::vector<Output> outs;
                 for (std::size_t i = 0; i < values.size(); ++i)
                   outs.push_back(
                       output(kernels::reduce_op_name(kReduceOps[i]), values[i], reduce_tol(kReduceOps[i], cols)));
                 return outs;
               },
               3 * bytes_of({x})};
  };
  return c;
}

// One reduction per tensor of a list cut from one buffer at odd offsets and lengths (a row of one element, rows
// past a block's stride, a gradient-norm chunk), in one launch; the same bits run to run on the GPU.
OpCase reduce_each_case(DType dt) {
  const std::vector<std::pair<std::int64_t, std::int64_t>> spans = {{0, 1}, {1, 1000}, {1001, 262144}, {263145, 70001}, {333146, 5}};
  const std::int64_t n = 333151;
  OpCase c{"reduce_each", describe(dt, {n}) + " in 5 tensors"};
  c.bind = [=](const Context& ctx) {
    const Tensor x = ctx.to_here(random_tensor({n}, dt, 13));
    std::vector<Tensor> xs, values;
    for (const auto& [lo, len] : spans) xs.push_back(x.slice(lo, lo + len));
    for (std::size_t i = 0; i < std::size(kReduceOps); ++i)
      values.push_back(ctx.empty({static_cast<std::int64_t>(spans.size())}, DType::f32));
    return Run{[=] {
                 for (std::size_t i = 0; i < values.size(); ++i) kernels::reduce_each(ctx, kReduceOps[i], xs, values[i]);
               },
               [=] {
                 std::vector<Output> outs;
                 for (std::size_t i = 0; i < values.size(); ++i)
                   outs.push_back(output(kernels::reduce_op_name(kReduceOps[i]), values[i],
                                         repeatable(reduce_tol(kReduceOps[i], 262144))));
                 return outs;
               },
               3 * bytes_of({x})};
  };
  c.naive = [=] {  // a double loop per tensor
    const Tensor x = random_tensor({n}, dt, 13);
    Tensor s2 = Tensor::host({static_cast<std::int64_t>(spans.size())}, DType::f64);
    for (std::size_t r = 0; r < spans.size(); ++r) {
      double acc = 0;
      for (std::int64_t i = spans[r].first; i < spans[r].first + spans[r].second; ++i) acc += value(x, i) * value(x, i);
      s2.data<double>()[r] = acc;
    }
    return std::vector{Output{"sum_squares", s2, within(1e-30, 1e-6)}};
  };
  return c;
}

void add_reduce_cases(std::vector<OpCase>& out) {
  // GPU-sized, and one element; then block-boundary sizes against the double loop.
  for (std::int64_t n : {1, 1000, 1 << 20, 3000017})
    for (DType dt : {DType::f32, DType::bf16}) out.push_back(reduce_case(n, dt, 11, n == 1));
  for (std::int64_t n : {17, 16384, 16385, 300001})
    for (DType dt : {DType::f32, DType::bf16}) out.push_back(reduce_case(n, dt, 9, true));
  for (auto [rows, cols] : {std::pair<std::int64_t, std::int64_t>{1, 1}, {5, 1000}, {64, 262144}, {3, 70001}})
    for (DType dt : {DType::f32, DType::bf16}) out.push_back(reduce_rows_case(rows, cols, dt));
  for (DType dt : {DType::f32, DType::bf16}) out.push_back(reduce_each_case(dt));
}

// ---------------------------------------------------------------- random fills and FP8

// Same Philox bits; log/cos/sin may differ by an ulp or two between libm and CUDA, and the GPU may fuse the
// final multiply-add.
OpCase random_case(kernels::Distribution d, DType dt) {
  const Shape s{100001};
  OpCase c{"fill_random", std::string(d == kernels::Distribution::uniform ? "uniform " : "normal ") + describe(dt, s)};
  c.bind = [=](const Context& ctx) {
    const Tensor x = ctx.empty(s, dt);
    return Run{[=] { kernels::fill_random(ctx, x, d, 0.5f, 2.0f, RngKey{77, 3}, 12345); },
               [=] { return std::vector{output("x", x, within(dt == DType::f32 ? 1e-5 : 0.0079 * 8))}; },
               bytes_of({x})};
  };
  return c;
}

// Quantisation and dequantisation are one rounding each, by the same rule: bit-exact.
OpCase fp8_case(int block_rows, int block_cols) {
  const std::int64_t rows = 300, cols = 520;
  OpCase c{"fp8", describe(DType::bf16, {rows, cols}) + " blocks " + std::to_string(block_rows) + "x" +
                      std::to_string(block_cols)};
  c.bind = [=](const Context& ctx) {
    const Tensor x = ctx.to_here(random_tensor({rows, cols}, DType::bf16, 31, 7.0f)),
                 y = ctx.empty({rows, cols}, DType::f32);
    const kernels::Fp8Tensor q = kernels::make_fp8(ctx, rows, cols, block_rows, block_cols);
    return Run{[=] {
                 kernels::quantize_fp8(ctx, x, q);
                 kernels::dequantize_fp8(ctx, q, y);
               },
               [=] {
                 return std::vector{output("scale_inv", q.scale_inv, bit_exact()), output("data", q.data, bit_exact()),
                                    output("dequantized", y, bit_exact())};
               },
               bytes_of({x, q.data, q.scale_inv, q.data, q.scale_inv, y})};
  };
  return c;
}

void add_random_cases(std::vector<OpCase>& out) {
  for (auto d : {kernels::Distribution::uniform, kernels::Distribution::normal})
    for (DType dt : {DType::f32, DType::bf16}) out.push_back(random_case(d, dt));
  for (auto [br, bc] : {std::pair{128, 128}, std::pair{1, 128}, std::pair{16, 8}}) out.push_back(fp8_case(br, bc));
}
}  // namespace

void add_blas_cases(std::vector<OpCase>& out) {
  add_gemm_cases(out);
  add_grouped_gemm_cases(out);
  add_elementwise_cases(out);
  add_reduce_cases(out);
  add_random_cases(out);
}

}  // namespace r1::test
