// CPU reference vs CUDA for every op of the backend seam. Labelled `gpu`: needs a CUDA device and fails
// (never skips) without one. Tolerances are stated per op beside each check.
#include <gtest/gtest.h>

#include <cstring>

#include "kernels/elementwise.hpp"
#include "kernels/fp8.hpp"
#include "kernels/gather_rows.hpp"
#include "kernels/random.hpp"
#include "kernels/gemm.hpp"
#include "kernels/reduce.hpp"
#include "kernels/test_util.hpp"

using namespace r1;
using kernels::Context;

namespace {

// Largest |C| entry could reach: |A| |B| summed, for a scale-aware GEMM tolerance.
double gemm_magnitude(const Tensor& a, const Tensor& b, std::int64_t k) {
  double ma = 0, mb = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) ma = std::max(ma, std::fabs(test::value(a, i)));
  for (std::int64_t i = 0; i < b.numel(); ++i) mb = std::max(mb, std::fabs(test::value(b, i)));
  return ma * mb * static_cast<double>(k);
}

struct GemmCase {
  Shape a, b, c;
  bool ta, tb;
};
const GemmCase kGemmCases[] = {
    {{64, 96}, {96, 80}, {64, 80}, false, false},         {{96, 64}, {96, 80}, {64, 80}, true, false},
    {{64, 96}, {80, 96}, {64, 80}, false, true},          {{96, 64}, {80, 96}, {64, 80}, true, true},
    {{3, 33, 65}, {3, 65, 17}, {3, 33, 17}, false, false}, {{3, 65, 33}, {3, 17, 65}, {3, 33, 17}, true, true},
    {{4, 40, 64}, {48, 64}, {4, 40, 48}, false, true},    // shared weight (folded into one GEMM)
    {{4, 64, 40}, {48, 64}, {4, 40, 48}, true, true},     // shared weight, transposed A: stride-0 batch
    {{40, 64}, {4, 64, 48}, {4, 40, 48}, false, false},   // shared A: stride-0 batch
    {{1, 1}, {1, 1}, {1, 1}, false, false},               {{512, 1024}, {768, 1024}, {512, 768}, false, true},
};
}  // namespace

// f32 inputs, f32 output, exact FP32 FMA on the GPU: only the summation order differs, so the error
// is bounded by ~K ulp of the magnitude; 1e-5 of |A||B|K holds with margin.
TEST(GemmParity, F32MatchesCpu) {
  const Context cpu = Context::cpu(), dev = test::gpu_context();
  for (const auto& cs : kGemmCases) {
    for (float beta : {0.0f, 0.5f}) {
      const Tensor a = test::random_tensor(cs.a, DType::f32, 1), b = test::random_tensor(cs.b, DType::f32, 2);
      const Tensor c0 = test::random_tensor(cs.c, DType::f32, 3);
      const kernels::GemmOptions o{.trans_a = cs.ta, .trans_b = cs.tb, .alpha = 1.25f, .beta = beta};
      Tensor hc = Tensor::host(cs.c, DType::f32);
      copy(hc, c0);
      kernels::gemm(cpu, a, b, hc, o);
      Tensor dc = dev.to_here(c0);
      kernels::gemm(dev, dev.to_here(a), dev.to_here(b), dc, o);
      const std::int64_t k = cs.ta ? cs.a[-2] : cs.a[-1];
      EXPECT_LE(test::max_error(test::to_host(dc), hc), 1e-5 * gemm_magnitude(a, b, k))
          << "A " << cs.a.str() << " B " << cs.b.str() << " beta " << beta;
    }
  }
}

// bf16 inputs (identical on both sides), f32 accumulation. f32 output: 1e-5 |A||B|K as above.
// bf16 output: one bf16 rounding of the result, 2^-8 relative, plus accumulation-order differences.
TEST(GemmParity, Bf16MatchesCpu) {
  const Context cpu = Context::cpu(), dev = test::gpu_context();
  for (const auto& cs : kGemmCases) {
    for (DType out : {DType::f32, DType::bf16}) {
      const Tensor a = test::random_tensor(cs.a, DType::bf16, 4), b = test::random_tensor(cs.b, DType::bf16, 5);
      const kernels::GemmOptions o{.trans_a = cs.ta, .trans_b = cs.tb};
      Tensor hc = Tensor::host(cs.c, out);
      kernels::gemm(cpu, a, b, hc, o);
      Tensor dc = dev.empty(cs.c, out);
      kernels::gemm(dev, dev.to_here(a), dev.to_here(b), dc, o);
      const std::int64_t k = cs.ta ? cs.a[-2] : cs.a[-1];
      const double mag = gemm_magnitude(a, b, k);
      const double tol = out == DType::f32 ? 1e-5 * mag : 1e-5 * mag + 0.0079 * test::max_error(hc, Tensor::host_zeros(cs.c, out));
      EXPECT_LE(test::max_error(test::to_host(dc), hc), tol) << "A " << cs.a.str() << " B " << cs.b.str() << " out " << dtype_name(out);
    }
  }
}

TEST(GemmParity, Tf32IsOptInAndClose) {
  const Context cpu = Context::cpu(), dev = test::gpu_context();
  const Tensor a = test::random_tensor({256, 512}, DType::f32, 6), b = test::random_tensor({384, 512}, DType::f32, 7);
  Tensor hc = Tensor::host({256, 384}, DType::f32);
  kernels::gemm(cpu, a, b, hc, {.trans_b = true});
  Tensor dc = dev.empty({256, 384}, DType::f32);
  kernels::gemm(dev, dev.to_here(a), dev.to_here(b), dc, {.trans_b = true, .allow_tf32 = true});
  // TF32 keeps 10 mantissa bits of each input: ~2^-11 relative per product.
  EXPECT_LE(test::max_error(test::to_host(dc), hc), 2e-3 * gemm_magnitude(a, b, 512) / std::sqrt(512.0));
}

TEST(ElementwiseParity, AxpyScaleFillCastMatchCpu) {
  const Context cpu = Context::cpu(), dev = test::gpu_context();
  for (DType tx : {DType::f32, DType::bf16})
    for (DType ty : {DType::f32, DType::bf16}) {
      const Tensor x = test::random_tensor({100003}, tx, 8), y = test::random_tensor({100003}, ty, 9);
      Tensor hy = cpu.to_here(y), dy = dev.to_here(y);
      kernels::axpy(cpu, 0.3f, x, hy);
      kernels::axpy(dev, 0.3f, dev.to_here(x), dy);
      kernels::scale(cpu, -2.0f, hy);
      kernels::scale(dev, -2.0f, dy);
      // Same f32 arithmetic on both sides; the GPU may contract a*x+y into one FMA (one rounding fewer).
      EXPECT_LE(test::max_error(test::to_host(dy), hy), ty == DType::f32 ? 1e-6 * 8 : 0.0079 * 8);
    }
  const Tensor x = test::random_tensor({4099}, DType::f32, 10, 100.0f);
  for (DType to : {DType::bf16, DType::f8e4m3, DType::f32}) {
    Tensor hc = Tensor::host({4099}, to), dc = dev.empty({4099}, to);
    kernels::cast(cpu, x, hc);
    kernels::cast(dev, dev.to_here(x), dc);
    const Tensor back = test::to_host(dc);
    EXPECT_EQ(std::memcmp(back.raw(), hc.raw(), hc.nbytes()), 0) << "cast to " << dtype_name(to) << " must be bit-exact";
  }
  Tensor df = dev.empty({777}, DType::bf16);
  kernels::fill(dev, df, -1.5f);
  const Tensor hf = test::to_host(df);
  for (int i = 0; i < 777; ++i) ASSERT_EQ(to_float(hf.data<bf16>()[i]), -1.5f);
}

TEST(ReduceParity, SumSumSquaresMaxAbsMatchCpu) {
  const Context cpu = Context::cpu(), dev = test::gpu_context();
  for (std::int64_t n : {1, 1000, 1 << 20, 3000017}) {
    for (DType dt : {DType::f32, DType::bf16}) {
      const Tensor x = test::random_tensor({n}, dt, 11);
      const Tensor dx = dev.to_here(x);
      for (auto op : {kernels::ReduceOp::sum, kernels::ReduceOp::sum_squares, kernels::ReduceOp::max_abs}) {
        const double c = kernels::reduce_value(cpu, op, x), g = kernels::reduce_value(dev, op, dx);
        // Both accumulate in double and round once to f32: agreement to f32 rounding of the larger scale.
        const double scale = op == kernels::ReduceOp::sum ? std::sqrt(static_cast<double>(n)) + std::fabs(c) : std::fabs(c);
        EXPECT_NEAR(g, c, 2e-7 * scale + 1e-30) << kernels::reduce_op_name(op) << " n=" << n;
        EXPECT_EQ(kernels::reduce_value(dev, op, dx), g) << "deterministic run to run";
      }
    }
  }
}

TEST(ReduceParity, RowsMatchCpuAndDependOnTheRowAlone) {
  const Context cpu = Context::cpu(), dev = test::gpu_context();
  for (auto [rows, cols] : {std::pair<std::int64_t, std::int64_t>{1, 1}, {5, 1000}, {64, 262144}, {3, 70001}}) {
    for (DType dt : {DType::f32, DType::bf16}) {
      const Tensor x = test::random_tensor({rows, cols}, dt, 12);
      const Tensor dx = dev.to_here(x);
      for (auto op : {kernels::ReduceOp::sum, kernels::ReduceOp::sum_squares, kernels::ReduceOp::max_abs}) {
        Tensor c = Tensor::host({rows}, DType::f32), g = dev.empty({rows}, DType::f32), g1 = dev.empty({1}, DType::f32);
        kernels::reduce_rows(cpu, op, x, c);
        kernels::reduce_rows(dev, op, dx, g);
        const Tensor hg = test::to_host(g);
        for (std::int64_t r = 0; r < rows; ++r) {
          const double cv = c.data<float>()[r];
          const double scale = op == kernels::ReduceOp::sum ? std::sqrt(static_cast<double>(cols)) + std::fabs(cv) : std::fabs(cv);
          EXPECT_NEAR(hg.data<float>()[r], cv, 2e-7 * scale + 1e-30) << kernels::reduce_op_name(op) << " " << rows << "x" << cols;
          kernels::reduce_rows(dev, op, dx.slice(r, r + 1), g1);
          EXPECT_EQ(test::to_host(g1).data<float>()[0], hg.data<float>()[r]) << "a row alone, same bits";
        }
      }
    }
  }
}

TEST(RandomParity, DeviceFillEqualsCpuFill) {
  const Context cpu = Context::cpu(), dev = test::gpu_context();
  for (auto d : {kernels::Distribution::uniform, kernels::Distribution::normal}) {
    for (DType dt : {DType::f32, DType::bf16}) {
      Tensor h = Tensor::host({100001}, dt), g = dev.empty({100001}, dt);
      kernels::fill_random(cpu, h, d, 0.5f, 2.0f, RngKey{77, 3}, 12345);
      kernels::fill_random(dev, g, d, 0.5f, 2.0f, RngKey{77, 3}, 12345);
      // Same Philox bits; log/cos/sin may differ by an ulp or two between libm and CUDA, and the GPU
      // may fuse the final multiply-add.
      const double tol = dt == DType::f32 ? 1e-5 : 0.0079 * 8;
      EXPECT_LE(test::max_error(test::to_host(g), h), tol) << static_cast<int>(d) << " " << dtype_name(dt);
    }
  }
}

TEST(Fp8Parity, QuantizeAndDequantizeAreBitExact) {
  const Context cpu = Context::cpu(), dev = test::gpu_context();
  for (auto [br, bc] : {std::pair{128, 128}, std::pair{1, 128}, std::pair{16, 8}}) {
    const Tensor x = test::random_tensor({300, 520}, DType::bf16, 31, 7.0f);
    auto hq = kernels::make_fp8(cpu, 300, 520, br, bc), dq = kernels::make_fp8(dev, 300, 520, br, bc);
    kernels::quantize_fp8(cpu, x, hq);
    kernels::quantize_fp8(dev, dev.to_here(x), dq);
    EXPECT_EQ(std::memcmp(test::to_host(dq.scale_inv).raw(), hq.scale_inv.raw(), hq.scale_inv.nbytes()), 0);
    EXPECT_EQ(std::memcmp(test::to_host(dq.data).raw(), hq.data.raw(), hq.data.nbytes()), 0);
    Tensor hy = Tensor::host({300, 520}, DType::f32), dy = dev.empty({300, 520}, DType::f32);
    kernels::dequantize_fp8(cpu, hq, hy);
    kernels::dequantize_fp8(dev, dq, dy);
    EXPECT_EQ(std::memcmp(test::to_host(dy).raw(), hy.raw(), hy.nbytes()), 0);
  }
}

// Copies move bits: the gathered rows are the CPU's exactly, in 16-byte packs (a bench KV cache's
// [slots, L, 512 + 64] rows) and element by element (odd widths).
TEST(GatherRowsParity, GatheredRowsAreBitExact) {
  const Context cpu = Context::cpu(), dev = test::gpu_context();
  const std::vector<std::int32_t> picks{5, 0, 63, 17, 17, 2};
  Tensor rows = Tensor::host({static_cast<std::int64_t>(picks.size())}, DType::i32);
  std::copy(picks.begin(), picks.end(), rows.data<std::int32_t>());
  for (DType dt : {DType::f32, DType::bf16})
    for (const Shape& s : {Shape{64, 300, 576}, Shape{64, 37}, Shape{64, 3, 5}}) {
      const Tensor src = test::random_tensor(s, dt, 41);
      const auto n = static_cast<std::int64_t>(picks.size());
      const Shape out = s.rank() == 2 ? Shape{n, s[1]} : Shape{n, s[1], s[2]};
      Tensor h = Tensor::host(out, dt), d = dev.empty(out, dt);
      kernels::gather_rows(cpu, src, rows, h);
      kernels::gather_rows(dev, dev.to_here(src), dev.to_here(rows), d);
      EXPECT_EQ(std::memcmp(test::to_host(d).raw(), h.raw(), h.nbytes()), 0) << s.str() << " " << dtype_name(dt);
    }
}
