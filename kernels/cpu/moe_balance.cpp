// CPU reference balance loss (double accumulation, sequence by sequence) and bias update.
#include <vector>

#include "kernels/cpu/moe_balance.hpp"
#include "kernels/moe_routing_math.hpp"

namespace r1::kernels::cpu {

namespace {
// Tokens of each sequence routed to each expert: [B * E].
std::vector<std::int32_t> sequence_counts(const Tensor& expert_idx, std::int64_t seq_len, std::int64_t n_experts,
                                          const char* op) {
  const std::int64_t t = expert_idx.dim(0), k = expert_idx.dim(1);
  std::vector<std::int32_t> c(static_cast<std::size_t>(t / seq_len * n_experts), 0);
  const std::int32_t* idx = expert_idx.data<std::int32_t>();
  for (std::int64_t i = 0; i < t * k; ++i) {
    R1_REQUIRE(idx[i] >= 0 && idx[i] < n_experts, op, ": expert index ", idx[i], " of token ", i / k,
               " is outside [0, ", n_experts, ")");
    ++c[static_cast<std::size_t>(i / k / seq_len * n_experts + idx[i])];
  }
  return c;
}
}  // namespace

void moe_balance_forward(const Tensor& scores, const Tensor& expert_idx, const BalanceParams& p, const Tensor& loss,
                         const Tensor& counts) {
  const std::int64_t t = scores.dim(0), e = scores.dim(1), k = expert_idx.dim(1), l = p.seq_len, b = t / l;
  const std::vector<std::int32_t> c = sequence_counts(expert_idx, l, e, "moe_balance_forward");
  std::vector<double> prob(c.size(), 0.0);  // sum_t s'_{i,t} per sequence
  const float* s = scores.data<float>();
#pragma omp parallel for schedule(static) if (b > 1)
  for (std::int64_t sq = 0; sq < b; ++sq)
    for (std::int64_t i = sq * l; i < (sq + 1) * l; ++i) {
      const double z = moe::score_sum(static_cast<int>(e), s + i * e);
      for (std::int64_t x = 0; x < e; ++x) prob[sq * e + x] += s[i * e + x] / z;
    }
  double sum = 0.0;
  for (std::size_t i = 0; i < c.size(); ++i) sum += c[i] * prob[i];
  const double norm = b > 0 ? static_cast<double>(p.alpha) / b * e / (static_cast<double>(k) * l) / l : 0.0;
  loss.data<float>()[0] = static_cast<float>(norm * sum);
  std::int32_t* out = counts.data<std::int32_t>();
  for (std::int64_t x = 0; x < e; ++x) {
    out[x] = 0;
    for (std::int64_t sq = 0; sq < b; ++sq) out[x] += c[sq * e + x];
  }
}

void moe_balance_backward(float dloss, const Tensor& scores, const Tensor& expert_idx, const BalanceParams& p,
                          const Tensor& dlogits) {
  const std::int64_t t = scores.dim(0), e = scores.dim(1), k = expert_idx.dim(1), l = p.seq_len, b = t / l;
  const std::vector<std::int32_t> c = sequence_counts(expert_idx, l, e, "moe_balance_backward");
  const double coef = static_cast<double>(dloss) * p.alpha / b * e / (static_cast<double>(k) * l) / l;
  const float* s = scores.data<float>();
  float* dx = dlogits.data<float>();
#pragma omp parallel for schedule(static) if (t > 256)
  for (std::int64_t i = 0; i < t; ++i)
    moe::balance_token_backward(p.score_func, static_cast<int>(e), s + i * e, c.data() + i / l * e, coef, dx + i * e);
}

void moe_bias_update(const Tensor& counts, float gamma, const Tensor& bias) {
  const std::int64_t e = counts.numel();
  const std::int32_t* c = counts.data<std::int32_t>();
  float* b = bias.data<float>();
  std::int64_t total = 0;
  for (std::int64_t i = 0; i < e; ++i) total += c[i];
  // count_i - mean compared as count_i * E - total: exact in integers.
  for (std::int64_t i = 0; i < e; ++i) {
    const std::int64_t d = c[i] * e - total;
    b[i] -= gamma * static_cast<float>((d > 0) - (d < 0));
  }
}

}  // namespace r1::kernels::cpu
