// CPU reference causal attention: one query row (or, for dk/dv, one key row) per OpenMP iteration, f32
// math on f32 copies of the inputs, softmax stabilised by the row maximum. Grouped-query attention indexes
// the shared K/V head of each query head directly (kv head = h / group) instead of expanding K and V.
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/attention.hpp"
#include "kernels/dispatch.hpp"

namespace r1::kernels::cpu {

namespace {
std::vector<float> to_f32(const Tensor& t) {
  std::vector<float> out(static_cast<std::size_t>(t.numel()));
  with_float_type(t.dtype(), "attention", [&](auto tag) {
    const auto* p = t.data<decltype(tag)>();
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = load_f32(p[i]);
  });
  return out;
}

void store(const std::vector<float>& src, const Tensor& dst) {
  with_float_type(dst.dtype(), "attention", [&](auto tag) {
    using T = decltype(tag);
    T* p = dst.data<T>();
    for (std::size_t i = 0; i < src.size(); ++i) p[i] = store_as<T>(src[i]);
  });
}

// Shapes and index arithmetic of the [B, S, H, D] (queries, outputs) and [B, S, Hkv, D] (keys, values)
// layouts, and the mask. Query head h reads K/V head h / G (G = H / Hkv query heads share one).
struct Geometry {
  std::int64_t B, S, H, Hkv, G, Dqk, Dv;
  const std::int32_t* seg;  // null: causal only
  explicit Geometry(const Tensor& q, const Tensor& v, const Tensor& segment_ids)
      : B(q.dim(0)), S(q.dim(1)), H(q.dim(2)), Hkv(v.dim(2)), G(H / Hkv), Dqk(q.dim(3)), Dv(v.dim(3)),
        seg(segment_ids.defined() ? segment_ids.data<std::int32_t>() : nullptr) {}
  std::int64_t q_row(std::int64_t b, std::int64_t s, std::int64_t h) const { return ((b * S + s) * H + h) * Dqk; }
  std::int64_t o_row(std::int64_t b, std::int64_t s, std::int64_t h) const { return ((b * S + s) * H + h) * Dv; }
  // Rows of the K/V head that query head h reads.
  std::int64_t k_row(std::int64_t b, std::int64_t s, std::int64_t h) const { return ((b * S + s) * Hkv + h / G) * Dqk; }
  std::int64_t v_row(std::int64_t b, std::int64_t s, std::int64_t h) const { return ((b * S + s) * Hkv + h / G) * Dv; }
  std::int64_t lse_at(std::int64_t b, std::int64_t h, std::int64_t s) const { return (b * H + h) * S + s; }
  bool visible(std::int64_t b, std::int64_t i, std::int64_t j) const {
    return j <= i && (seg == nullptr || seg[b * S + i] == seg[b * S + j]);
  }
};

float dot(const float* a, const float* b, std::int64_t n) {
  float s = 0.0f;
  for (std::int64_t c = 0; c < n; ++c) s += a[c] * b[c];
  return s;
}
}  // namespace

void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, float scale, const Tensor& segment_ids,
                       const Tensor& out, const Tensor& lse) {
  const Geometry g(q, v, segment_ids);
  const std::vector<float> fq = to_f32(q), fk = to_f32(k), fv = to_f32(v);
  std::vector<float> fo(static_cast<std::size_t>(out.numel()));
  float* plse = lse.data<float>();
#pragma omp parallel
  {
    std::vector<float> p(static_cast<std::size_t>(g.S));
#pragma omp for collapse(3) schedule(dynamic, 16)
    for (std::int64_t b = 0; b < g.B; ++b)
      for (std::int64_t h = 0; h < g.H; ++h)
        for (std::int64_t i = 0; i < g.S; ++i) {
          const float* qi = &fq[g.q_row(b, i, h)];
          float mx = -std::numeric_limits<float>::infinity();
          for (std::int64_t j = 0; j <= i; ++j)
            if (g.visible(b, i, j)) {
              p[j] = scale * dot(qi, &fk[g.k_row(b, j, h)], g.Dqk);
              mx = std::max(mx, p[j]);
            }
          float sum = 0.0f;
          float* oi = &fo[g.o_row(b, i, h)];
          for (std::int64_t c = 0; c < g.Dv; ++c) oi[c] = 0.0f;
          for (std::int64_t j = 0; j <= i; ++j)
            if (g.visible(b, i, j)) {
              const float e = std::exp(p[j] - mx);
              sum += e;
              const float* vj = &fv[g.v_row(b, j, h)];
              for (std::int64_t c = 0; c < g.Dv; ++c) oi[c] += e * vj[c];
            }
          for (std::int64_t c = 0; c < g.Dv; ++c) oi[c] /= sum;
          plse[g.lse_at(b, h, i)] = mx + std::log(sum);
        }
  }
  store(fo, out);
}

// dP_ij = dout_i . v_j, dS_ij = P_ij (dP_ij - D_i) with D_i = dout_i . out_i (= sum_j P_ij dP_ij);
// dq_i = scale sum_j dS_ij k_j, dk_j = scale sum_i dS_ij q_i, dv_j = sum_i P_ij dout_i, the key sums also
// over the G query heads that share the K/V head. Two passes (by query rows, then by key rows) so that each
// output row has one writer.
void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& dout,
                        const Tensor& lse, const Tensor& segment_ids, float scale, const Tensor& dq, const Tensor& dk,
                        const Tensor& dv) {
  const Geometry g(q, v, segment_ids);
  const std::vector<float> fq = to_f32(q), fk = to_f32(k), fv = to_f32(v), fo = to_f32(out), fdo = to_f32(dout);
  const float* plse = lse.data<float>();
  std::vector<float> d(static_cast<std::size_t>(lse.numel()));
  std::vector<float> fdq(fq.size()), fdk(fk.size()), fdv(fv.size());
  const auto prob = [&](std::int64_t b, std::int64_t h, std::int64_t i, std::int64_t j) {
    return std::exp(scale * dot(&fq[g.q_row(b, i, h)], &fk[g.k_row(b, j, h)], g.Dqk) - plse[g.lse_at(b, h, i)]);
  };
  const auto dscore = [&](std::int64_t b, std::int64_t h, std::int64_t i, std::int64_t j, float p) {
    return p * (dot(&fdo[g.o_row(b, i, h)], &fv[g.v_row(b, j, h)], g.Dv) - d[g.lse_at(b, h, i)]);
  };
#pragma omp parallel for collapse(3) schedule(static)
  for (std::int64_t b = 0; b < g.B; ++b)
    for (std::int64_t h = 0; h < g.H; ++h)
      for (std::int64_t i = 0; i < g.S; ++i)
        d[g.lse_at(b, h, i)] = dot(&fdo[g.o_row(b, i, h)], &fo[g.o_row(b, i, h)], g.Dv);
#pragma omp parallel for collapse(3) schedule(dynamic, 16)
  for (std::int64_t b = 0; b < g.B; ++b)
    for (std::int64_t h = 0; h < g.H; ++h)
      for (std::int64_t i = 0; i < g.S; ++i) {
        float* dqi = &fdq[g.q_row(b, i, h)];
        for (std::int64_t j = 0; j <= i; ++j)
          if (g.visible(b, i, j)) {
            const float ds = scale * dscore(b, h, i, j, prob(b, h, i, j));
            const float* kj = &fk[g.k_row(b, j, h)];
            for (std::int64_t c = 0; c < g.Dqk; ++c) dqi[c] += ds * kj[c];
          }
      }
#pragma omp parallel for collapse(3) schedule(dynamic, 16)
  for (std::int64_t b = 0; b < g.B; ++b)
    for (std::int64_t hk = 0; hk < g.Hkv; ++hk)
      for (std::int64_t j = 0; j < g.S; ++j) {
        float* dkj = &fdk[g.k_row(b, j, hk * g.G)];
        float* dvj = &fdv[g.v_row(b, j, hk * g.G)];
        for (std::int64_t h = hk * g.G; h < (hk + 1) * g.G; ++h)
          for (std::int64_t i = j; i < g.S; ++i)
            if (g.visible(b, i, j)) {
              const float p = prob(b, h, i, j), ds = scale * dscore(b, h, i, j, p);
              const float *qi = &fq[g.q_row(b, i, h)], *doi = &fdo[g.o_row(b, i, h)];
              for (std::int64_t c = 0; c < g.Dqk; ++c) dkj[c] += ds * qi[c];
              for (std::int64_t c = 0; c < g.Dv; ++c) dvj[c] += p * doi[c];
            }
      }
  store(fdq, dq);
  store(fdk, dk);
  store(fdv, dv);
}

}  // namespace r1::kernels::cpu
