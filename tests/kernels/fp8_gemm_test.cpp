// The block-scaled FP8 GEMM's CPU reference against a naive double GEMM of the dequantised operands, its error
// against the unquantised product, and the transposed quantisation against quantising the transpose.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "kernels/fp8_experts.hpp"
#include "kernels/fp8_gemm.hpp"
#include "kernels/test_util.hpp"

using namespace r1;
using kernels::Fp8Tensor;

namespace {
const auto ctx = kernels::Context::cpu();

Fp8Tensor quantized(const Tensor& x, int br, int bc) {
  Fp8Tensor q = kernels::make_fp8(ctx, x.dim(0), x.dim(1), br, bc);
  kernels::quantize_fp8(ctx, x, q);
  return q;
}

Tensor dequantized(const Fp8Tensor& q) {
  Tensor y = Tensor::host(q.data.shape(), DType::f32);
  kernels::dequantize_fp8(ctx, q, y);
  return y;
}

// sum_k a[i, k] b[j, k] in double, and sum_k |a[i, k] b[j, k]| beside it.
struct Naive {
  std::vector<double> c, magnitude;
};
Naive naive_abt(const Tensor& a, const Tensor& b) {
  const std::int64_t m = a.dim(0), n = b.dim(0), k = a.dim(1);
  Naive out{std::vector<double>(static_cast<std::size_t>(m * n)), std::vector<double>(static_cast<std::size_t>(m * n))};
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j)
      for (std::int64_t q = 0; q < k; ++q) {
        const double p = test::value(a, i * k + q) * test::value(b, j * k + q);
        out.c[static_cast<std::size_t>(i * n + j)] += p;
        out.magnitude[static_cast<std::size_t>(i * n + j)] += std::fabs(p);
      }
  return out;
}

// Partial tiles on every dimension (and a K below one tile), whole tiles, both B tilings.
struct Case {
  std::int64_t m, n, k;
  int b_rows;
};
const Case kCases[] = {{70, 200, 300, 128}, {130, 129, 256, 128}, {5, 40, 77, 128}, {64, 96, 260, 1}, {3, 300, 128, 1}};
}  // namespace

TEST(Fp8GemmCpu, EqualsTheDoubleGemmOfTheDequantisedOperands) {
  for (const Case& cs : kCases)
    for (DType out : {DType::f32, DType::bf16}) {
      const Tensor x = test::random_tensor({cs.m, cs.k}, DType::f32, 31), w = test::random_tensor({cs.n, cs.k}, DType::f32, 32, 0.05f);
      const Fp8Tensor qa = quantized(x, 1, 128), qb = quantized(w, cs.b_rows, 128);
      const Naive ref = naive_abt(dequantized(qa), dequantized(qb));
      Tensor c = test::random_tensor({cs.m, cs.n}, out, 33);
      Tensor c0 = Tensor::host(c.shape(), out);
      std::memcpy(c0.raw(), c.raw(), static_cast<std::size_t>(c.numel()) * dtype_size(out));
      kernels::fp8_gemm(ctx, qa, qb, c, {.alpha = 0.5f, .beta = 2.0f});
      // One rounding of the result (f32, or bf16: 2^-8 relative) and of each dequantised f32 operand of the
      // naive sum, relative to the sum of magnitudes (the terms cancel).
      const double rel = out == DType::f32 ? 1e-6 : 1.0 / 256;
      for (std::int64_t i = 0; i < cs.m * cs.n; ++i) {
        const double ab = 0.5 * ref.c[static_cast<std::size_t>(i)], bc = 2.0 * test::value(c0, i);
        ASSERT_NEAR(test::value(c, i), ab + bc, rel * (0.5 * ref.magnitude[static_cast<std::size_t>(i)] + std::fabs(bc))) << cs.m << "x" << cs.n << "x" << cs.k << " at " << i;
      }
    }
}

TEST(Fp8GemmCpu, ErrorAgainstTheUnquantisedProductIsBoundedByE4M3Rounding) {
  for (const Case& cs : kCases) {
    const Tensor x = test::random_tensor({cs.m, cs.k}, DType::f32, 41), w = test::random_tensor({cs.n, cs.k}, DType::f32, 42);
    const Naive exact = naive_abt(x, w);
    Tensor c = Tensor::host({cs.m, cs.n}, DType::f32);
    kernels::fp8_gemm(ctx, quantized(x, 1, 128), quantized(w, cs.b_rows, 128), c);
    // Each operand is off by at most half an E4M3 ulp (2^-4 relative for normals), so each product by
    // (1 + 2^-4)^2 - 1 < 0.13 of its magnitude (subnormals, far below the tile maxima here, aside).
    double worst = 0;
    for (std::int64_t i = 0; i < cs.m * cs.n; ++i) {
      const double err = std::fabs(test::value(c, i) - exact.c[static_cast<std::size_t>(i)]);
      ASSERT_LE(err, 0.13 * exact.magnitude[static_cast<std::size_t>(i)]) << i;
      worst = std::max(worst, err / exact.magnitude[static_cast<std::size_t>(i)]);
    }
    EXPECT_GT(worst, 0.0) << "quantisation must change something";
  }
}

TEST(Fp8GemmCpu, TransposedQuantisationEqualsQuantisingTheTranspose) {
  for (DType dt : {DType::f32, DType::bf16})
    for (auto [br, bc] : {std::pair{1, 128}, std::pair{128, 128}}) {
      const Tensor x = test::random_tensor({300, 200}, dt, 51);
      Tensor xt = Tensor::host({200, 300}, dt);
      for (std::int64_t r = 0; r < 300; ++r)
        for (std::int64_t c = 0; c < 200; ++c)
          std::memcpy(static_cast<char*>(xt.raw()) + (c * 300 + r) * dtype_size(dt),
                      static_cast<const char*>(x.raw()) + (r * 200 + c) * dtype_size(dt), dtype_size(dt));
      const Fp8Tensor want = quantized(xt, br, bc);
      Fp8Tensor got = kernels::make_fp8(ctx, 200, 300, br, bc);
      kernels::quantize_fp8_transposed(ctx, x, got);
      ASSERT_EQ(std::memcmp(got.data.raw(), want.data.raw(), 200 * 300), 0) << br << "x" << bc;
      ASSERT_EQ(std::memcmp(got.scale_inv.raw(), want.scale_inv.raw(), want.scale_inv.numel() * 4), 0) << br << "x" << bc;
    }
}

TEST(Fp8GemmCpu, RowViewsOfOneByNTilesMultiplyAsTheirRows) {
  const Tensor x = test::random_tensor({50, 256}, DType::f32, 61), w = test::random_tensor({40, 256}, DType::f32, 62);
  const Fp8Tensor qa = quantized(x, 1, 128), qb = quantized(w, 128, 128);
  Tensor whole = Tensor::host({50, 40}, DType::f32), part = Tensor::host({13, 40}, DType::f32);
  kernels::fp8_gemm(ctx, qa, qb, whole);
  kernels::fp8_gemm(ctx, kernels::fp8_rows(qa, 20, 33), qb, part);
  EXPECT_EQ(std::memcmp(part.raw(), whole.data<float>() + 20 * 40, 13 * 40 * 4), 0);
  EXPECT_THROW(kernels::fp8_rows(qb, 10, 20), Error);  // not on a 128-row block
}

TEST(Fp8GemmCpu, WrongTilingsAndShapesAreNamed) {
  const Tensor x = test::random_tensor({8, 256}, DType::f32, 71);
  const Fp8Tensor q1 = quantized(x, 1, 128), q128 = quantized(x, 128, 128), q64 = quantized(x, 1, 64);
  Tensor c = Tensor::host({8, 8}, DType::f32);
  try {
    kernels::fp8_gemm(ctx, q128, q1, c);
    FAIL() << "A in 128x128 blocks accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("A must be in 1x128 tiles"), std::string::npos) << e.what();
  }
  EXPECT_THROW(kernels::fp8_gemm(ctx, q1, q64, c), Error);
  Tensor wrong = Tensor::host({8, 9}, DType::f32);
  try {
    kernels::fp8_gemm(ctx, q1, q1, wrong);
    FAIL() << "a wrong C accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("C must be [8, 8]"), std::string::npos) << e.what();
  }
}

// The GEMM reads either scale layout to the same bits; the experts' GEMMs in one call are each expert's GEMM.
TEST(Fp8GemmCpu, GemmLayoutScalesAndExpertGemmsGiveEachGemmsBits) {
  const kernels::Context cpu = kernels::Context::cpu();
  const std::vector<std::int64_t> offsets = test::ragged_offsets();
  const std::int64_t experts = static_cast<std::int64_t>(offsets.size()) - 1, k = 200, n = 140;
  const Tensor x = test::random_tensor({offsets.back(), k}, DType::f32, 41);
  const Tensor w = test::random_tensor({experts, n, k}, DType::f32, 42);
  const auto in = test::expert_rows_alone(cpu, x, offsets, false);
  Tensor want = Tensor::host_zeros({offsets.back(), n}, DType::f32), got = Tensor::host_zeros({offsets.back(), n}, DType::f32);
  test::expert_loop_forward(cpu, in, w, false, false, want, offsets);
  std::vector<kernels::Fp8Tensor> a, b;
  std::vector<Tensor> c;
  for (std::int64_t e = 0; e < experts; ++e) {
    a.push_back(kernels::to_gemm_layout(cpu, in[static_cast<std::size_t>(e)]));
    b.push_back(kernels::to_gemm_layout(cpu, test::quantized_alone(cpu, test::expert_matrix(w, e), 128, false, false)));
    c.push_back(got.slice(offsets[e], offsets[e + 1]));
  }
  kernels::fp8_gemm_experts(cpu, a, b, c);
  EXPECT_TRUE(test::same_bytes(got, want));
  b.pop_back();
  EXPECT_THROW(kernels::fp8_gemm_experts(cpu, a, b, c), Error);  // one B short
}
