// Sampling reference: sorts the candidates, as the definition in kernels/sampling.hpp reads.
#include <algorithm>
#include <cmath>

#include "kernels/cpu/sampling.hpp"

namespace r1::kernels::cpu {

SampledToken sample_row(const float* logits, std::int64_t V, const SampleOptions& o, double u,
                        std::vector<std::int32_t>& scratch) {
  R1_CHECK(V > 0, "sampling from an empty logit row");
  const bool greedy = o.temperature == 0.0f;
  const double inv_t = greedy ? 1.0 : 1.0 / o.temperature;
  std::int64_t best = 0;
  for (std::int64_t i = 1; i < V; ++i)
    if (logits[i] > logits[best]) best = i;
  const double zmax = logits[best] * inv_t;
  const auto weight = [&](std::int64_t i) { return std::exp(logits[i] * inv_t - zmax); };
  double total = 0.0, weighted = 0.0;  // sum of e^(z - zmax), and of e^(z - zmax) z
  for (std::int64_t i = 0; i < V; ++i) {
    const double w = weight(i);
    total += w;
    if (w > 0.0) weighted += w * (logits[i] * inv_t);  // masked (-inf) logits add nothing
  }
  const double lse = zmax + std::log(total);
  const auto result = [&](std::int64_t tok) {
    return SampledToken{static_cast<std::int32_t>(tok), static_cast<float>(logits[tok] * inv_t - lse),
                        static_cast<float>(lse - weighted / total)};  // H = lse - E_p[z]
  };
  if (greedy) return result(best);

  // The kept set, as ids: everything, or the top-k / nucleus prefix of the (logit desc, id asc) order.
  scratch.resize(static_cast<std::size_t>(V));
  for (std::int64_t i = 0; i < V; ++i) scratch[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i);
  std::int64_t n = V;
  double kept = total;
  if ((o.top_k > 0 && o.top_k < V) || o.top_p < 1.0f) {
    n = o.top_k > 0 ? std::min(o.top_k, V) : V;
    const auto more_likely = [&](std::int32_t a, std::int32_t b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    };
    std::partial_sort(scratch.begin(), scratch.begin() + n, scratch.end(), more_likely);
    kept = 0.0;
    for (std::int64_t i = 0; i < n; ++i) kept += weight(scratch[static_cast<std::size_t>(i)]);
    if (o.top_p < 1.0f) {
      const double target = static_cast<double>(o.top_p) * kept;
      double cum = 0.0;
      for (std::int64_t i = 0; i < n; ++i) {
        cum += weight(scratch[static_cast<std::size_t>(i)]);
        if (cum >= target) {
          n = i + 1;
          kept = cum;
          break;
        }
      }
    }
    std::sort(scratch.begin(), scratch.begin() + n);  // the draw walks the kept set in id order
  }
  const double target = u * kept;
  double cum = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int32_t id = scratch[static_cast<std::size_t>(i)];
    const double w = weight(id);
    cum += w;
    if (cum > target && w > 0.0) return result(id);
  }
  return result(best);  // u x kept rounded past the last sum
}

void sample_rows(const Tensor& logits, const Tensor& uniforms, const SampleOptions& o, const Tensor& tokens,
                 const Tensor& logprobs, const Tensor& entropies) {
  const std::int64_t B = logits.dim(0), V = logits.dim(1);
  const std::int64_t drawable = o.vocab_limit > 0 ? std::min(V, o.vocab_limit) : V;
#pragma omp parallel for schedule(dynamic) if (B * V >= (1 << 18))
  for (std::int64_t b = 0; b < B; ++b) {
    thread_local std::vector<std::int32_t> scratch;
    const SampledToken t = sample_row(logits.data<float>() + b * V, drawable, o, uniforms.data<double>()[b], scratch);
    tokens.data<std::int32_t>()[b] = t.token;
    logprobs.data<float>()[b] = t.logprob;
    entropies.data<float>()[b] = t.entropy;
  }
}

}  // namespace r1::kernels::cpu
