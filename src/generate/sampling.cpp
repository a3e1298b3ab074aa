#include "generate/sampling.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.hpp"
#include "core/rng.hpp"

namespace r1 {

namespace {
constexpr std::uint32_t kSamplingStream = 0x53414d50u;  // "SAMP": apart from every other use of the seed
}

void validate(const SamplingParams& p) {
  R1_REQUIRE(std::isfinite(p.temperature) && p.temperature >= 0.0f, "sampling: temperature ", p.temperature,
             " must be >= 0 (0 = greedy)");
  R1_REQUIRE(p.top_p > 0.0f && p.top_p <= 1.0f, "sampling: top_p ", p.top_p, " must be in (0, 1]");
  R1_REQUIRE(p.top_k >= 0, "sampling: top_k ", p.top_k, " must be >= 0 (0 = off)");
  R1_REQUIRE(p.max_new_tokens >= 1, "sampling: max_new_tokens ", p.max_new_tokens, " must be >= 1");
}

double sampling_uniform(std::uint64_t seed, std::uint64_t prompt, std::uint32_t sample, std::uint32_t position) {
  const Philox4 r = philox4x32_10(
      Philox4{{position, sample, static_cast<std::uint32_t>(prompt), static_cast<std::uint32_t>(prompt >> 32) ^ kSamplingStream}},
      static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
  const std::uint64_t bits = (static_cast<std::uint64_t>(r.v[0]) << 21) | (r.v[1] >> 11);
  return static_cast<double>(bits) * 0x1.0p-53;
}

SampledToken sample_token(std::span<const float> logits, const SamplingParams& p, double u,
                          std::vector<std::int32_t>& scratch) {
  const auto V = static_cast<std::int64_t>(logits.size());
  R1_CHECK(V > 0, "sampling from an empty logit row");
  const bool greedy = p.temperature == 0.0f;
  const double inv_t = greedy ? 1.0 : 1.0 / p.temperature;
  std::int64_t best = 0;
  for (std::int64_t i = 1; i < V; ++i)
    if (logits[i] > logits[best]) best = i;
  const double zmax = logits[best] * inv_t;
  double total = 0.0, weighted = 0.0;  // sum of e^(z - zmax), and of e^(z - zmax) z
  for (std::int64_t i = 0; i < V; ++i) {
    const double z = logits[i] * inv_t, w = std::exp(z - zmax);
    total += w;
    weighted += w * z;
  }
  const double lse = zmax + std::log(total);
  const float entropy = static_cast<float>(lse - weighted / total);  // H = lse - E_p[z]
  const auto result = [&](std::int64_t tok) {
    return SampledToken{static_cast<std::int32_t>(tok), static_cast<float>(logits[tok] * inv_t - lse), entropy};
  };
  if (greedy) return result(best);

  const bool truncate = (p.top_k > 0 && p.top_k < V) || p.top_p < 1.0f;
  if (!truncate) {  // inverse CDF in id order: no sort needed
    const double target = u * total;
    double cum = 0.0;
    for (std::int64_t i = 0; i < V; ++i) {
      const double w = std::exp(logits[i] * inv_t - zmax);
      cum += w;
      if (cum > target && w > 0.0) return result(i);
    }
    return result(best);  // u * total rounded past the last sum
  }

  const std::int64_t k = p.top_k > 0 ? std::min(p.top_k, V) : V;
  scratch.resize(static_cast<std::size_t>(V));
  for (std::int64_t i = 0; i < V; ++i) scratch[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i);
  const auto more_likely = [&](std::int32_t a, std::int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  std::partial_sort(scratch.begin(), scratch.begin() + k, scratch.end(), more_likely);
  double kept = 0.0;
  for (std::int64_t i = 0; i < k; ++i) kept += std::exp(logits[scratch[static_cast<std::size_t>(i)]] * inv_t - zmax);
  // Nucleus of the renormalised top-k distribution: the shortest prefix whose mass reaches top_p.
  std::int64_t n = k;
  if (p.top_p < 1.0f) {
    double cum = 0.0;
    for (std::int64_t i = 0; i < k; ++i) {
      cum += std::exp(logits[scratch[static_cast<std::size_t>(i)]] * inv_t - zmax);
      if (cum >= static_cast<double>(p.top_p) * kept) {
        n = i + 1;
        kept = cum;
        break;
      }
    }
  }
  const double target = u * kept;
  double cum = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    cum += std::exp(logits[scratch[static_cast<std::size_t>(i)]] * inv_t - zmax);
    if (cum > target) return result(scratch[static_cast<std::size_t>(i)]);
  }
  return result(scratch[static_cast<std::size_t>(n - 1)]);
}

}  // namespace r1
