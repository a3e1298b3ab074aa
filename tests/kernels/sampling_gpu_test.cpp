// CUDA sampling against the CPU reference (kernels/sampling.hpp): the same token for every row under
// greedy, plain, top-k, top-p and both, with boundary ties, -inf logits and a vocabulary limit, at every
// cluster size the kernel picks (1 to 16 blocks); rows built to stress the selection (near-uniform, all mass
// on one id, every id tied); log-probs and entropies to f64 summation order; the same bits run to run.
// Labelled `gpu`: fails (never skips) without a CUDA device.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>

#include "kernels/sampling.hpp"
#include "kernels/test_util.hpp"

using namespace r1;
using kernels::Context;
using kernels::SampleOptions;

namespace {
// Random rows at scale 3; every third row rounded to whole numbers (many exact ties at every boundary), and a
// few -inf entries (masked ids).
Tensor logits(std::int64_t B, std::int64_t V, std::uint32_t stream) {
  Tensor t = test::random_tensor({B, V}, DType::f32, stream, 3.0f);
  float* p = t.data<float>();
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t i = 0; i < V; ++i) {
      float& x = p[b * V + i];
      if (b % 3 == 1) x = std::round(x);
      if (V > 4 && (i * 7 + b) % 97 == 3) x = -INFINITY;
    }
  return t;
}
Tensor uniforms(std::int64_t B, double shift) {
  Tensor u = Tensor::host({B}, DType::f64);
  for (std::int64_t b = 0; b < B; ++b) u.data<double>()[b] = std::fmod(0.6180339887498949 * static_cast<double>(b + 1) + shift, 1.0);
  return u;
}

std::string describe(std::int64_t B, std::int64_t V, const SampleOptions& o, double shift) {
  return "B " + std::to_string(B) + " V " + std::to_string(V) + " T " + std::to_string(o.temperature) + " top_k " +
         std::to_string(o.top_k) + " top_p " + std::to_string(o.top_p) + " limit " + std::to_string(o.vocab_limit) +
         " shift " + std::to_string(shift);
}

// Both backends on the same rows: equal tokens, log-probs and entropies to f64 summation order, and the CUDA
// result the same bits when run again.
void expect_matches_cpu(const Tensor& x, const Tensor& u, const SampleOptions& o, const std::string& what) {
  const Context cpu = Context::cpu(), dev = test::gpu_context();
  const std::int64_t B = x.dim(0);
  Tensor tok = Tensor::host({B}, DType::i32), lp = Tensor::host({B}, DType::f32), ent = Tensor::host({B}, DType::f32);
  kernels::sample_rows(cpu, x, u, o, tok, lp, ent);
  const Tensor gx = dev.to_here(x), gu = dev.to_here(u);
  Tensor gtok = dev.empty({B}, DType::i32), glp = dev.empty({B}, DType::f32), gent = dev.empty({B}, DType::f32);
  kernels::sample_rows(dev, gx, gu, o, gtok, glp, gent);
  const Tensor htok = test::to_host(gtok), hlp = test::to_host(glp), hent = test::to_host(gent);
  for (std::int64_t b = 0; b < B; ++b) {
    ASSERT_EQ(htok.data<std::int32_t>()[b], tok.data<std::int32_t>()[b]) << what << " row " << b;
    // Both sides sum e^(z - zmax) in f64, in different orders: ~1e-15 relative, printed as f32.
    EXPECT_NEAR(hlp.data<float>()[b], lp.data<float>()[b], 2e-6 * (1 + std::fabs(lp.data<float>()[b]))) << what;
    EXPECT_NEAR(hent.data<float>()[b], ent.data<float>()[b], 2e-6 * (1 + std::fabs(ent.data<float>()[b]))) << what;
  }
  kernels::sample_rows(dev, gx, gu, o, gtok, glp, gent);
  EXPECT_EQ(std::memcmp(test::to_host(gtok).raw(), htok.raw(), htok.nbytes()), 0) << what << ": run to run";
  EXPECT_EQ(std::memcmp(test::to_host(glp).raw(), hlp.raw(), hlp.nbytes()), 0) << what << ": run to run";
  EXPECT_EQ(std::memcmp(test::to_host(gent).raw(), hent.raw(), hent.nbytes()), 0) << what << ": run to run";
}
}  // namespace

TEST(SamplingParity, TokensLogprobsAndEntropiesMatchCpu) {
  const SampleOptions opts[] = {
      {.temperature = 0.0f},
      {.temperature = 1.0f},
      {.temperature = 0.7f, .top_k = 50},
      {.temperature = 1.0f, .top_p = 0.9f},
      {.temperature = 0.6f, .top_p = 0.95f, .top_k = 20},
      {.temperature = 1.3f, .top_p = 0.5f, .top_k = 3},
      {.temperature = 1.0f, .top_k = 1},
      {.temperature = 0.8f, .top_p = 0.3f, .vocab_limit = 900},
  };
  // 1, 2, 4 and 8 blocks per row, and DeepSeek-V3's vocabulary.
  const std::pair<std::int64_t, std::int64_t> shapes[] = {{5, 1},      {33, 7},     {64, 1000},  {4, 5000},
                                                          {4, 10000},  {16, 50257}, {8, 102400}, {2, 129280}};
  std::uint32_t stream = 1;
  for (auto [B, V] : shapes)
    for (const SampleOptions& o : opts)
      for (double shift : {0.0, 0.37}) expect_matches_cpu(logits(B, V, stream++), uniforms(B, shift), o, describe(B, V, o, shift));
}

// Full-vocabulary rows where the boundaries are hardest: near-uniform (the nucleus holds most ids), all the
// mass on one id (the rest rounds to nothing in the kernel's fixed point), every id tied with -0 and +0 mixed,
// and two plateaus of ties; at 102400 ids, DeepSeek-V3's 129280, and 200000 (a cluster of 16 blocks).
TEST(SamplingParity, HardRowsMatchCpu) {
  const SampleOptions opts[] = {
      {.temperature = 1.0f, .top_p = 0.95f},
      {.temperature = 0.6f, .top_p = 0.95f},
      {.temperature = 1.0f, .top_p = 0.95f, .top_k = 40000},
      {.temperature = 1.0f, .top_k = 100},
      {.temperature = 0.7f, .top_p = 0.5f},
      {.temperature = 1.0f, .top_p = 0.999f, .top_k = 3},
      {.temperature = 1.0f},
      {.temperature = 0.0f},
  };
  std::uint32_t stream = 1000;
  for (std::int64_t V : {102400, 129280, 200000}) {
    constexpr std::int64_t B = 4;
    Tensor x = test::random_tensor({B, V}, DType::f32, stream++, 0.01f);  // row 0: near-uniform
    float* p = x.data<float>();
    for (std::int64_t i = 0; i < V; ++i) {
      p[V + i] = i == V / 3 ? 60.0f : p[V + i] * 100.0f;  // row 1: one id holds all the mass
      p[2 * V + i] = i % 2 ? -0.0f : 0.0f;                 // row 2: every id tied
      p[3 * V + i] = i % 3 ? 0.0f : 1.0f;                  // row 3: two plateaus
    }
    for (const SampleOptions& o : opts)
      for (double shift : {0.0, 0.37}) expect_matches_cpu(x, uniforms(B, shift), o, describe(B, V, o, shift));
  }
}
