// Host sampling: empirical frequencies of many draws against softmax(logits / T) restricted to the top-k
// and then to the top-p nucleus (a chi-square bound), greedy = argmax, log-probs of the full tempered
// softmax, and Philox draws that depend on every part of their key.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <vector>

#include "core/error.hpp"
#include "generate/sampling.hpp"

using namespace r1;

namespace {
const std::vector<float> kLogits{1.0f, 2.5f, -0.5f, 0.3f, 2.0f, -2.0f, 1.7f, 0.0f, 3.0f, -1.0f, 0.9f, 1.2f};

// softmax(logits / T), then the k most likely renormalised, then the shortest prefix of mass >= top_p.
std::vector<double> expected(const SamplingParams& p) {
  const std::size_t V = kLogits.size();
  std::vector<std::size_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [](std::size_t a, std::size_t b) { return kLogits[a] > kLogits[b]; });
  const std::size_t k = p.top_k > 0 ? std::min<std::size_t>(static_cast<std::size_t>(p.top_k), V) : V;
  std::vector<double> w(V, 0.0);
  double z = 0;
  for (std::size_t i = 0; i < k; ++i) z += w[order[i]] = std::exp(kLogits[order[i]] / p.temperature);
  double cum = 0;
  std::size_t keep = k;
  for (std::size_t i = 0; i < k; ++i)
    if ((cum += w[order[i]] / z) >= p.top_p) {
      keep = i + 1;
      break;
    }
  double kept = 0;
  for (std::size_t i = keep; i < V; ++i) w[order[i]] = 0;
  for (double x : w) kept += x;
  for (double& x : w) x /= kept;
  return w;
}
}  // namespace

TEST(Sampling, FrequenciesMatchTheRestrictedTemperedSoftmax) {
  struct Case {
    float temperature, top_p;
    std::int64_t top_k;
  };
  const Case cases[] = {{1.0f, 1.0f, 0}, {0.7f, 1.0f, 5}, {1.3f, 0.8f, 0}, {1.0f, 0.7f, 6}, {2.0f, 0.95f, 3}};
  const int n = 100000;
  std::vector<std::int32_t> scratch;
  for (const Case& c : cases) {
    SamplingParams p;
    p.temperature = c.temperature;
    p.top_p = c.top_p;
    p.top_k = c.top_k;
    const std::vector<double> want = expected(p);
    std::vector<int> count(kLogits.size(), 0);
    for (int i = 0; i < n; ++i)
      ++count[static_cast<std::size_t>(sample_token(kLogits, p, sampling_uniform(5, 3, 1, static_cast<std::uint32_t>(i)), scratch).token)];
    double chi2 = 0;
    int support = 0;
    for (std::size_t v = 0; v < kLogits.size(); ++v) {
      if (want[v] == 0) {
        EXPECT_EQ(count[v], 0) << "token " << v << " is outside top-k/top-p (T " << c.temperature << ")";
        continue;
      }
      ++support;
      const double e = n * want[v];
      chi2 += (count[v] - e) * (count[v] - e) / e;
    }
    const double dof = support - 1;  // mean dof, sd sqrt(2 dof): a bound far in the tail
    EXPECT_LT(chi2, dof + 8 * std::sqrt(2 * dof) + 8) << "T " << c.temperature << " top_p " << c.top_p << " top_k " << c.top_k;
  }
}

TEST(Sampling, GreedyTakesTheArgmaxAndLogprobsUseTheFullTemperedSoftmax) {
  std::vector<std::int32_t> scratch;
  SamplingParams p;
  p.temperature = 0.0f;
  const SampledToken g = sample_token(kLogits, p, 0.999, scratch);
  EXPECT_EQ(g.token, 8);
  double z = 0;
  for (float l : kLogits) z += std::exp(l);
  EXPECT_NEAR(g.logprob, 3.0 - std::log(z), 1e-6);
  const std::vector<float> ties{1.0f, 4.0f, 4.0f};
  EXPECT_EQ(sample_token(ties, p, 0.5, scratch).token, 1);  // lowest id among equal maxima

  p.temperature = 0.5f;
  p.top_k = 2;
  p.top_p = 0.5f;
  z = 0;
  for (float l : kLogits) z += std::exp(l / 0.5);
  for (double u : {0.0, 0.3, 0.99}) {
    const SampledToken t = sample_token(kLogits, p, u, scratch);
    EXPECT_NEAR(t.logprob, kLogits[static_cast<std::size_t>(t.token)] / 0.5 - std::log(z), 1e-6);
  }
}

TEST(Sampling, EntropyIsThatOfTheTemperedSoftmax) {
  const std::vector<float> logits = {2.0f, -1.0f, 0.5f, 3.0f, 0.0f, -4.0f};
  for (float t : {1.0f, 0.7f, 2.0f}) {
    double z = 0;
    for (float l : logits) z += std::exp(static_cast<double>(l) / t);
    double h = 0;
    for (float l : logits) {
      const double p = std::exp(static_cast<double>(l) / t) / z;
      h -= p * std::log(p);
    }
    SamplingParams params;
    params.temperature = t;
    std::vector<std::int32_t> scratch;
    EXPECT_NEAR(sample_token(logits, params, 0.3, scratch).entropy, h, 1e-6) << "T = " << t;
  }
  const std::vector<float> peaked = {0.0f, 80.0f, 0.0f};
  SamplingParams params;
  std::vector<std::int32_t> scratch;
  EXPECT_NEAR(sample_token(peaked, params, 0.5, scratch).entropy, 0.0, 1e-6);  // a near-certain choice
  // Masked ids (-inf) carry no probability and no entropy.
  const std::vector<float> masked = {0.0f, -INFINITY, 0.0f};
  EXPECT_NEAR(sample_token(masked, params, 0.5, scratch).entropy, std::log(2.0), 1e-6);
}

TEST(Sampling, DrawsDependOnEveryPartOfTheKey) {
  std::set<double> seen;
  for (std::uint64_t seed : {0ull, 1ull})
    for (std::uint64_t prompt : {0ull, 1ull, 1ull << 40})
      for (std::uint32_t sample : {0u, 1u})
        for (std::uint32_t pos : {0u, 1u}) {
          const double u = sampling_uniform(seed, prompt, sample, pos);
          EXPECT_GE(u, 0.0);
          EXPECT_LT(u, 1.0);
          EXPECT_EQ(u, sampling_uniform(seed, prompt, sample, pos));
          seen.insert(u);
        }
  EXPECT_EQ(seen.size(), 24u);
}

TEST(Sampling, ParametersOutOfRangeAreRejected) {
  SamplingParams p;
  p.temperature = -1.0f;
  EXPECT_THROW(validate(p), Error);
  p = {};
  p.top_p = 1.5f;
  EXPECT_THROW(validate(p), Error);
  p = {};
  p.top_k = -2;
  EXPECT_THROW(validate(p), Error);
  p = {};
  p.max_new_tokens = 0;
  EXPECT_THROW(validate(p), Error);
  EXPECT_NO_THROW(validate(SamplingParams{}));
}

// The definition's edges (kernels/sampling.hpp): ties at the top-k boundary are admitted by lower id, and the
// draw walks the kept set in id order, so u just above the first kept id's share picks the next kept id.
TEST(Sampling, TiesAtTheBoundaryGoByIdAndTheDrawWalksIdOrder) {
  const std::vector<float> logits{0.0f, 2.0f, 1.0f, 2.0f, 2.0f, -1.0f};
  SamplingParams p;
  p.top_k = 2;  // ids 1 and 3 (of the three tied at 2.0), equally likely
  std::vector<std::int32_t> scratch;
  EXPECT_EQ(sample_token(logits, p, 0.49, scratch).token, 1);
  EXPECT_EQ(sample_token(logits, p, 0.51, scratch).token, 3);
  EXPECT_EQ(sample_token(logits, p, 0.999, scratch).token, 3);
  p.top_k = 0;
  p.top_p = 0.5f;  // half the mass needs two of the three tied tokens: ids 1 and 3 are admitted, id 4 is not
  const double z = 1 + 3 * std::exp(2.0) + std::exp(1.0) + std::exp(-1.0);
  const int needed = static_cast<int>(std::ceil(0.5 * z / std::exp(2.0)));  // tied tokens needed for half the mass
  ASSERT_EQ(needed, 2);
  for (double u : {0.0, 0.3, 0.7, 0.99}) {
    const std::int32_t t = sample_token(logits, p, u, scratch).token;
    EXPECT_TRUE(t == 1 || t == 3) << "u " << u << " drew " << t;  // id 4 is tied but later in id order
  }
}
