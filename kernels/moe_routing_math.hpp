// Per-token routing arithmetic shared by the CPU reference and the CUDA kernels: one piece of code on both
// sides, with its own exp and explicitly rounded steps, so that scores and selections are bit-identical.
#pragma once
#include <cstdint>

#include "core/dtype.hpp"
#include "kernels/moe_router.hpp"

namespace r1::kernels::moe {

// Single-rounding add and multiply: nvcc would otherwise fuse a product into a following add (FMA) on the
// GPU only, and the two sides' scores would differ in the last bit, enough to flip a near-tie selection.
R1_HD float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
R1_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

// e^x within 2 ulp (Cody-Waite reduction, Cephes' minimax polynomial), from IEEE-exact steps only: libm's
// expf and CUDA's differ in the last bit. Exact 0 below -103.97 and +inf above 88.72.
R1_HD float exp_det(float x) {
  if (x != x) return x;
  if (x > 88.7228394f) return INFINITY;
  if (x < -103.972084f) return 0.0f;
  const float n = rintf(mul_rn(x, 1.44269504088896341f));
  float r = fmaf(n, -0.693359375f, x);  // ln 2 split in two: n * hi is exact
  r = fmaf(n, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = fmaf(p, r, 1.3981999507e-3f);
  p = fmaf(p, r, 8.3334519073e-3f);
  p = fmaf(p, r, 4.1665795894e-2f);
  p = fmaf(p, r, 1.6666665459e-1f);
  p = fmaf(p, r, 5.0000001201e-1f);
  const float y = add_rn(fmaf(p, mul_rn(r, r), r), 1.0f);
  // 2^n in two exactly representable halves, so that results near the subnormal range round once.
  const int n1 = static_cast<int>(n) / 2, n2 = static_cast<int>(n) - n1;
  return mul_rn(mul_rn(y, bits_float(static_cast<std::uint32_t>(n1 + 127) << 23)),
                bits_float(static_cast<std::uint32_t>(n2 + 127) << 23));
}

// Selection order: larger biased score first, then lower index; NaN ranks below every number so that a
// selection always exists. `bi < 0` means nothing chosen yet.
R1_HD float rank_key(float v) { return v != v ? -INFINITY : v; }
R1_HD bool ranks_before(float v, int i, float bv, int bi) { return bi < 0 || v > bv || (v == bv && i < bi); }

R1_HD float biased_key(const float* s, const float* bias, int e) {
  return rank_key(bias ? add_rn(s[e], bias[e]) : s[e]);
}

// The pieces of one token's routing, each used by the serial routine below and by the CUDA kernel's warp
// (kernels/cuda/moe_router.cu), so that both compute the same bits.
R1_HD float sigmoid_det(float x) { return 1.0f / add_rn(1.0f, exp_det(-x)); }
// The softmax's maximum, one logit at a time from -inf: NaN never wins, and since max is exact the order in
// which logits (or partial maxima) are taken does not matter.
R1_HD float max_step(float m, float x) { return x > m ? x : m; }
// A group's score: the sum of its top-2 biased scores (its one score when a group holds one expert).
R1_HD float group_score(const float* s, const float* bias, int lo, int hi) {
  float m1 = -INFINITY, m2 = -INFINITY;
  for (int e = lo; e < hi; ++e) {
    const float v = biased_key(s, bias, e);
    if (v > m1) {
      m2 = m1;
      m1 = v;
    } else if (v > m2) {
      m2 = v;
    }
  }
  return hi - lo >= 2 ? add_rn(m1, m2) : m1;
}
// Picks are made one at a time in selection order: a candidate must rank after the previous pick (pi < 0:
// none yet). With ranks_before a strict total order, the best candidate is the same whichever order the
// candidates are compared in.
R1_HD bool after_prev(float v, int i, float pv, int pi) { return pi < 0 || v < pv || (v == pv && i > pi); }
// Gates from the unbiased scores of the picks, summed in pick order.
R1_HD void gates_of(const RouterParams& p, const float* s, const std::int32_t* idx, float* gates) {
  float sum = 0.0f;
  for (int j = 0; j < p.top_k; ++j) sum = add_rn(sum, s[idx[j]]);
  // The tiny term keeps a row whose sigmoids all underflowed finite (as Hugging Face's DeepseekV3 does).
  const float denom = p.normalize ? add_rn(sum, 1e-20f) : 1.0f;
  for (int j = 0; j < p.top_k; ++j) gates[j] = mul_rn(p.route_scale, s[idx[j]]) / denom;
}

// One token: scores (E) from logits (E), then idx (k) and gates (k). bias may be null. With `replay` and
// idx[0] >= 0, idx holds the experts to use (routing replay): no selection, gates from these scores.
R1_HD void route_token(const RouterParams& p, int E, const float* x, const float* bias, float* s, std::int32_t* idx,
                       float* gates, bool replay) {
  if (p.score_func == ScoreFunc::sigmoid) {
    for (int e = 0; e < E; ++e) s[e] = sigmoid_det(x[e]);
  } else {
    float m = -INFINITY;
    for (int e = 0; e < E; ++e) m = max_step(m, x[e]);
    float sum = 0.0f;  // in expert order, on both backends
    for (int e = 0; e < E; ++e) {
      s[e] = exp_det(x[e] - m);
      sum = add_rn(sum, s[e]);
    }
    for (int e = 0; e < E; ++e) s[e] = s[e] / sum;
  }
  if (replay && idx[0] >= 0) return gates_of(p, s, idx, gates);

  // Groups kept: chosen one at a time in selection order.
  const int group_size = E / p.n_groups;
  std::uint64_t kept = ~std::uint64_t{0};
  if (p.topk_groups < p.n_groups) {
    kept = 0;
    float prev_v = 0.0f;
    int prev_g = -1;
    for (int pick = 0; pick < p.topk_groups; ++pick) {
      float best_v = -INFINITY;
      int best_g = -1;
      for (int g = 0; g < p.n_groups; ++g) {
        const float v = group_score(s, bias, g * group_size, (g + 1) * group_size);
        if (after_prev(v, g, prev_v, prev_g) && ranks_before(v, g, best_v, best_g)) {
          best_v = v;
          best_g = g;
        }
      }
      kept |= std::uint64_t{1} << best_g;
      prev_v = best_v;
      prev_g = best_g;
    }
  }

  float prev_v = 0.0f;
  int prev_e = -1;
  for (int j = 0; j < p.top_k; ++j) {
    float best_v = -INFINITY;
    int best_e = -1;
    for (int e = 0; e < E; ++e) {
      if (!((kept >> (e / group_size)) & 1u)) continue;
      const float v = biased_key(s, bias, e);
      if (after_prev(v, e, prev_v, prev_e) && ranks_before(v, e, best_v, best_e)) {
        best_v = v;
        best_e = e;
      }
    }
    idx[j] = best_e;
    prev_v = best_v;
    prev_e = best_e;
  }
  gates_of(p, s, idx, gates);
}

// One token's d(gates)/d(logits): g_j = r s_j / S (normalised, S = sum of selected s + 1e-20) or r s_j.
// ds_j = (r dg_j - sum_i dg_i g_i) / S or r dg_j; then through the sigmoid (s (1 - s)) or the softmax
// (s_e (ds_e - sum_j ds_j s_j), dense over all experts).
R1_HD void route_token_backward(const RouterParams& p, int E, const float* dg, const float* s, const std::int32_t* idx,
                                const float* g, float* dx) {
  const int k = p.top_k;
  float S = 0.0f, c = 0.0f;
  for (int j = 0; j < k; ++j) {
    S += s[idx[j]];
    c += dg[j] * g[j];
  }
  S += 1e-20f;
  const auto ds = [&](int j) { return p.normalize ? (p.route_scale * dg[j] - c) / S : p.route_scale * dg[j]; };
  for (int e = 0; e < E; ++e) dx[e] = 0.0f;
  if (p.score_func == ScoreFunc::sigmoid) {
    for (int j = 0; j < k; ++j) dx[idx[j]] = ds(j) * s[idx[j]] * (1.0f - s[idx[j]]);
    return;
  }
  float c2 = 0.0f;
  for (int j = 0; j < k; ++j) c2 += ds(j) * s[idx[j]];
  for (int e = 0; e < E; ++e) dx[e] = -s[e] * c2;
  for (int j = 0; j < k; ++j) dx[idx[j]] += s[idx[j]] * ds(j);
}

// Sum of a token's affinities over all experts: the normaliser of the balance loss's s'.
R1_HD double score_sum(int E, const float* s) {
  double z = 0.0;
  for (int e = 0; e < E; ++e) z += s[e];
  return z;
}

// One token's balance-loss gradient added to dx: dL/ds'_e = coef * count_e (count in the token's sequence);
// s' = s / Z gives ds_e = (dL/ds'_e - <dL/ds', s'>) / Z; then through the score function.
R1_HD void balance_token_backward(ScoreFunc f, int E, const float* s, const std::int32_t* counts, double coef,
                                  float* dx) {
  const double z = score_sum(E, s);
  double gs = 0.0;
  for (int e = 0; e < E; ++e) gs += coef * counts[e] * s[e];
  gs /= z;
  double c2 = 0.0;
  if (f == ScoreFunc::softmax)
    for (int e = 0; e < E; ++e) c2 += (coef * counts[e] - gs) / z * s[e];
  for (int e = 0; e < E; ++e) {
    const double ds = (coef * counts[e] - gs) / z, se = s[e];
    dx[e] += static_cast<float>(f == ScoreFunc::sigmoid ? ds * se * (1.0 - se) : se * (ds - c2));
  }
}

}  // namespace r1::kernels::moe
