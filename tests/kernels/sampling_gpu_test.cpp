// CUDA sampling against the CPU reference (kernels/sampling.hpp): the same token for every row under
// greedy, plain, top-k, top-p and both, with boundary ties, -inf logits and a vocabulary limit; log-probs and
// entropies to f64 summation order; the same bits run to run. Labelled `gpu`: fails (never skips) without
// a CUDA device.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

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
}  // namespace

TEST(SamplingParity, TokensLogprobsAndEntropiesMatchCpu) {
  const Context cpu = Context::cpu(), dev = test::gpu_context();
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
  const std::pair<std::int64_t, std::int64_t> shapes[] = {{5, 1}, {33, 7}, {64, 1000}, {16, 50257}, {8, 102400}};
  std::uint32_t stream = 1;
  for (auto [B, V] : shapes)
    for (const SampleOptions& o : opts)
      for (double shift : {0.0, 0.37}) {
        const std::string what = "B " + std::to_string(B) + " V " + std::to_string(V) + " T " + std::to_string(o.temperature) +
                                 " top_k " + std::to_string(o.top_k) + " top_p " + std::to_string(o.top_p) + " limit " +
                                 std::to_string(o.vocab_limit) + " shift " + std::to_string(shift);
        const Tensor x = logits(B, V, stream++), u = uniforms(B, shift);
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
      }
}
