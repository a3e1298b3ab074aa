#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/fp8.hpp"
#include "kernels/fp8_experts.hpp"
#include "kernels/swiglu.hpp"
#include "kernels/test_util.hpp"

using namespace r1;

namespace {
double tile_amax(const Tensor& x, std::int64_t r0, std::int64_t r1, std::int64_t c0, std::int64_t c1) {
  double m = 0;
  for (std::int64_t r = r0; r < r1; ++r)
    for (std::int64_t c = c0; c < c1; ++c) m = std::max(m, std::fabs(test::value(x, r * x.dim(1) + c)));
  return m;
}
}  // namespace

TEST(Fp8Cpu, ScalesAreTileMaxOver448AndRoundTripIsWithinHalfAnUlp) {
  const auto ctx = kernels::Context::cpu();
  for (auto [br, bc] : {std::pair{128, 128}, std::pair{1, 128}, std::pair{16, 8}}) {
    // Rows of very different magnitudes, and partial tiles at the edges (300 x 200).
    Tensor x = test::random_tensor({300, 200}, DType::f32, 21);
    for (std::int64_t r = 0; r < 300; ++r)
      for (std::int64_t c = 0; c < 200; ++c) x.data<float>()[r * 200 + c] *= std::ldexp(1.0f, static_cast<int>(r % 7) - 3);
    auto q = kernels::make_fp8(ctx, 300, 200, br, bc);
    kernels::quantize_fp8(ctx, x, q);
    Tensor y = Tensor::host({300, 200}, DType::f32);
    kernels::dequantize_fp8(ctx, q, y);
    const std::int64_t tc = q.scale_inv.dim(1);
    for (std::int64_t bi = 0; bi < q.scale_inv.dim(0); ++bi)
      for (std::int64_t bj = 0; bj < tc; ++bj) {
        const std::int64_t r0 = bi * br, r1 = std::min<std::int64_t>(300, r0 + br);
        const std::int64_t c0 = bj * bc, c1 = std::min<std::int64_t>(200, c0 + bc);
        const double amax = tile_amax(x, r0, r1, c0, c1);
        const float s = q.scale_inv.data<float>()[bi * tc + bj];
        ASSERT_EQ(s, static_cast<float>(amax) / 448.0f) << bi << "," << bj;
        for (std::int64_t r = r0; r < r1; ++r)
          for (std::int64_t c = c0; c < c1; ++c) {
            const double v = test::value(x, r * 200 + c), w = test::value(y, r * 200 + c);
            // e4m3: 3 mantissa bits, so half an ulp is 2^-4 relative for normals; 2^-10 * s below 2^-6 * s.
            ASSERT_LE(std::fabs(v - w), std::max(std::fabs(v) / 16, std::ldexp(1.0, -10) * s) * (1 + 1e-6)) << r << "," << c;
          }
      }
  }
}

TEST(Fp8Cpu, PowerOfTwoScalesAreTheNextPowerOfTwoAndRoundTripAsFp32Ones) {
  const auto ctx = kernels::Context::cpu();
  Tensor x = test::random_tensor({130, 300}, DType::f32, 22);
  x.data<float>()[0] = 448.0f * 0.25f;  // a tile whose amax / 448 is a power of two already keeps it
  for (auto [br, bc] : {std::pair{128, 128}, std::pair{1, 128}}) {
    auto q = kernels::make_fp8(ctx, 130, 300, br, bc);
    q.pow2_scales = true;
    kernels::quantize_fp8(ctx, x, q);
    Tensor y = Tensor::host({130, 300}, DType::f32);
    kernels::dequantize_fp8(ctx, q, y);
    const std::int64_t tc = q.scale_inv.dim(1);
    for (std::int64_t bi = 0; bi < q.scale_inv.dim(0); ++bi)
      for (std::int64_t bj = 0; bj < tc; ++bj) {
        const std::int64_t r0 = bi * br, r1 = std::min<std::int64_t>(130, r0 + br);
        const std::int64_t c0 = bj * bc, c1 = std::min<std::int64_t>(300, c0 + bc);
        const double want = tile_amax(x, r0, r1, c0, c1) / 448.0;
        const float s = q.scale_inv.data<float>()[bi * tc + bj];
        int e;
        ASSERT_EQ(std::frexp(s, &e), 0.5f) << "a power of two: " << s;
        ASSERT_TRUE(s >= want && s < 2 * want) << bi << "," << bj << ": " << s << " for " << want;
        for (std::int64_t r = r0; r < r1; ++r)
          for (std::int64_t c = c0; c < c1; ++c) {
            const double v = test::value(x, r * 300 + c), w = test::value(y, r * 300 + c);
            ASSERT_LE(std::fabs(v - w), std::max(std::fabs(v) / 16, std::ldexp(1.0, -10) * s) * (1 + 1e-6)) << r << "," << c;
          }
      }
    if (br == 1) {
      EXPECT_EQ(q.scale_inv.data<float>()[0], 0.25f);
    }
  }
}

TEST(Fp8Cpu, AllZeroTileHasUnitScale) {
  const auto ctx = kernels::Context::cpu();
  Tensor x = Tensor::host_zeros({4, 4}, DType::bf16);
  auto q = kernels::make_fp8(ctx, 4, 4, 128, 128);
  kernels::quantize_fp8(ctx, x, q);
  EXPECT_EQ(q.scale_inv.data<float>()[0], 1.0f);
  EXPECT_EQ(q.data.data<f8e4m3>()[5].bits, 0);
}

TEST(Fp8Cpu, MismatchedShapesAreNamed) {
  const auto ctx = kernels::Context::cpu();
  auto q = kernels::make_fp8(ctx, 4, 4, 2, 2);
  try {
    kernels::quantize_fp8(ctx, Tensor::host({4, 5}, DType::f32), q);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dense f32[4, 5] on host and fp8 data f8e4m3[4, 4] on host must be the same 2-D shape"), std::string::npos) << e.what();
  }
}

// The expert dispatch's regrouping of FP8 rows: each row's bytes and its tile scales, copied exactly (a row may
// be taken twice); a row index out of range is named.
TEST(Fp8Cpu, GatherRowsCopiesEachRowsBytesAndScales) {
  const auto ctx = kernels::Context::cpu();
  const Tensor x = test::random_tensor({5, 300}, DType::f32, 31);
  auto q = kernels::make_fp8(ctx, 5, 300, 1, 128), g = kernels::make_fp8(ctx, 4, 300, 1, 128);
  kernels::quantize_fp8(ctx, x, q);
  const std::vector<std::int32_t> rows{4, 0, 4, 2};
  kernels::gather_fp8_rows(ctx, q, test::host_ints(rows), g);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const std::int64_t r = rows[i], gi = static_cast<std::int64_t>(i);
    EXPECT_EQ(std::memcmp(g.data.data<f8e4m3>() + gi * 300, q.data.data<f8e4m3>() + r * 300, 300), 0) << "row " << i;
    EXPECT_EQ(std::memcmp(g.scale_inv.data<float>() + gi * 3, q.scale_inv.data<float>() + r * 3, 12), 0) << "row " << i;
  }
  EXPECT_THROW(kernels::gather_fp8_rows(ctx, q, test::host_ints({0, 1, 5, 2}), g), Error);
}

// SwiGLU with its output quantised in the same pass (the FP8 down projection's input): the reference is the two
// ops one after the other, and the fused result equals them bit for bit (partial last tile, pow2 scales too).
TEST(Fp8Cpu, SwigluForwardFp8IsSwigluThenQuantise) {
  const auto ctx = kernels::Context::cpu();
  for (bool pow2 : {false, true}) {
    const Tensor gu = test::random_tensor({7, 2 * 200}, DType::bf16, 41);
    Tensor h = Tensor::host({7, 200}, DType::bf16), h_ref = Tensor::host({7, 200}, DType::bf16);
    auto q = kernels::make_fp8(ctx, 7, 200, 1, 128), q_ref = kernels::make_fp8(ctx, 7, 200, 1, 128);
    q.pow2_scales = q_ref.pow2_scales = pow2;
    kernels::swiglu_forward_fp8(ctx, gu, h, q);
    kernels::swiglu_forward(ctx, gu, h_ref);
    kernels::quantize_fp8(ctx, h_ref, q_ref);
    EXPECT_EQ(std::memcmp(h.raw(), h_ref.raw(), h.nbytes()), 0);
    EXPECT_EQ(std::memcmp(q.data.raw(), q_ref.data.raw(), q.data.nbytes()), 0);
    EXPECT_EQ(std::memcmp(q.scale_inv.raw(), q_ref.scale_inv.raw(), q.scale_inv.nbytes()), 0);
  }
  auto bad = kernels::make_fp8(ctx, 7, 200, 128, 128);
  EXPECT_THROW(kernels::swiglu_forward_fp8(ctx, test::random_tensor({7, 400}, DType::f32, 1),
                                           Tensor::host({7, 200}, DType::f32), bad), Error);
}

// The GEMM's scale layout (cuBLASLt's): 1 x 128 tiles tile-major with the rows padded to 4, 128 x 128 blocks
// row-major with the block columns padded to 4, the padding zero.
TEST(Fp8Cpu, GemmLayoutPutsEachTileWhereCublasLtReadsIt) {
  const kernels::Context cpu = kernels::Context::cpu();
  const Tensor x = test::random_tensor({300, 600}, DType::f32, 31);
  for (int br : {1, 128}) {
    const kernels::Fp8Tensor q = test::quantized_alone(cpu, x, br, false, false);
    const kernels::Fp8Tensor g = kernels::to_gemm_layout(cpu, q);
    const std::int64_t tr = q.scale_inv.dim(0), tc = q.scale_inv.dim(1), ld = br == 1 ? 300 : 8;
    ASSERT_TRUE(g.gemm_layout);
    ASSERT_EQ(g.scale_inv.numel(), br == 1 ? tc * ld : tr * ld);
    EXPECT_TRUE(test::same_bytes(g.data, q.data));
    const float* s = q.scale_inv.data<float>();
    const float* out = g.scale_inv.data<float>();
    for (std::int64_t i = 0; i < g.scale_inv.numel(); ++i) {
      const std::int64_t r = br == 1 ? i % ld : i / ld, t = br == 1 ? i / ld : i % ld;
      ASSERT_EQ(out[i], r < tr && t < tc ? s[r * tc + t] : 0.0f) << br << "-row tiles, slot " << i;
    }
  }
  EXPECT_EQ(kernels::fp8_gemm_scale_count(5, 300, 1, 128), 3 * 8);  // rows 5 -> 8
  EXPECT_EQ(kernels::fp8_gemm_scale_count(300, 1408, 128, 128), 3 * 12);  // 11 block columns -> 12
}

// Every expert's operand quantised in one pass is the bytes of quantising the expert alone, for ragged token
// counts and empty experts: its rows (from x, or relaid from tiles already made), and for the weight gradient
// its tokens transposed, tiles from its first token, zero-padded to 16 tokens.
TEST(Fp8Cpu, ExpertFormsAreEachExpertQuantisedAlone) {
  const kernels::Context cpu = kernels::Context::cpu();
  const std::vector<std::int64_t> offsets = test::ragged_offsets();
  for (DType dt : {DType::f32, DType::bf16})
    for (bool pow2 : {false, true}) {
      const Tensor x = test::random_tensor({offsets.back(), 200}, dt, 32);
      const auto rows_alone = test::expert_rows_alone(cpu, x, offsets, pow2);
      const auto cols_alone = test::expert_columns_alone(cpu, x, offsets, pow2);
      const auto rows = kernels::quantize_fp8_expert_rows(cpu, x, offsets, pow2);
      const auto relaid = kernels::fp8_expert_rows(cpu, test::quantized_alone(cpu, x, 1, pow2, false), offsets);
      const auto cols = kernels::quantize_fp8_expert_columns(cpu, x, offsets, pow2);
      ASSERT_EQ(rows.size(), rows_alone.size());
      ASSERT_EQ(relaid.size(), rows_alone.size());
      ASSERT_EQ(cols.size(), cols_alone.size());
      for (std::size_t e = 0; e < rows.size(); ++e) {
        const std::string what = "expert " + std::to_string(e) + " pow2 " + std::to_string(pow2);
        const kernels::Fp8Tensor want = kernels::to_gemm_layout(cpu, rows_alone[e]);
        EXPECT_TRUE(test::same_fp8(rows[e], want)) << "rows, " << what;
        EXPECT_TRUE(test::same_fp8(relaid[e], want)) << "relaid rows, " << what;
        EXPECT_TRUE(test::same_fp8(cols[e], kernels::to_gemm_layout(cpu, cols_alone[e]))) << "columns, " << what;
        EXPECT_EQ(cols[e].data.dim(1) % 16, 0) << what;
        // cuBLASLt's alignment of every expert's operands.
        EXPECT_EQ(reinterpret_cast<std::uintptr_t>(rows[e].scale_inv.raw()) % 16, 0u) << what;
        EXPECT_EQ(reinterpret_cast<std::uintptr_t>(cols[e].scale_inv.raw()) % 16, 0u) << what;
        EXPECT_EQ(reinterpret_cast<std::uintptr_t>(cols[e].data.raw()) % 16, 0u) << what;
      }
    }
}

TEST(Fp8Cpu, ExpertFormsNameBadOffsets) {
  const kernels::Context cpu = kernels::Context::cpu();
  const Tensor x = test::random_tensor({10, 128}, DType::f32, 34);
  const std::vector<std::int64_t> short_of_rows{0, 4, 9}, decreasing{0, 6, 4, 10};
  EXPECT_THROW(kernels::quantize_fp8_expert_rows(cpu, x, short_of_rows, false), Error);
  EXPECT_THROW(kernels::quantize_fp8_expert_columns(cpu, x, decreasing, false), Error);
  const kernels::Fp8Tensor g = kernels::to_gemm_layout(cpu, test::quantized_alone(cpu, x, 1, false, false));
  EXPECT_THROW(kernels::fp8_rows(g, 0, 4), Error);  // rows of GEMM-layout scales are not a slice
  EXPECT_THROW(kernels::dequantize_fp8(cpu, g, Tensor::host({10, 128}, DType::f32)), Error);
}
