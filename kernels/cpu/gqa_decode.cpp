// CPU reference decode attention over the GQA cache: one (sequence, query head) at a time, f32 math.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/gqa_decode.hpp"
#include "kernels/dispatch.hpp"

namespace r1::kernels::cpu {

void gqa_decode_attention(const GqaDecodeShape& s, const Tensor& q, const Tensor& cache_k, const Tensor& cache_v,
                          const Tensor& lengths, float scale, const Tensor& out) {
  const std::int64_t H = s.heads, K = s.kv_heads, d = s.head_dim, L = s.max_len, group = H / K;
  const std::int32_t* len = lengths.data<std::int32_t>();
  with_float_type(q.dtype(), "gqa_decode_attention", [&](auto tag) {
    using T = decltype(tag);
    const T* pq = q.data<T>();
    const T* pk = cache_k.data<T>();
    const T* pv = cache_v.data<T>();
    T* po = out.data<T>();
#pragma omp parallel for schedule(static) if (s.batch * H * L * d >= (1 << 18))
    for (std::int64_t bh = 0; bh < s.batch * H; ++bh) {
      const std::int64_t b = bh / H, kv = bh % H / group, n = len[b];
      const T* qr = pq + bh * d;
      const auto row = [&](const T* cache, std::int64_t j) { return cache + (s.blocks.row(b, j) * K + kv) * d; };
      std::vector<float> p(static_cast<std::size_t>(n)), o(static_cast<std::size_t>(d), 0.0f);
      float m = -std::numeric_limits<float>::infinity();
      for (std::int64_t j = 0; j < n; ++j) {
        const T* k = row(pk, j);
        float a = 0.0f;
        for (std::int64_t e = 0; e < d; ++e) a += load_f32(qr[e]) * load_f32(k[e]);
        p[j] = a * scale;
        m = std::max(m, p[j]);
      }
      float sum = 0.0f;
      for (std::int64_t j = 0; j < n; ++j) {
        p[j] = std::exp(p[j] - m);
        sum += p[j];
        const T* v = row(pv, j);
        for (std::int64_t e = 0; e < d; ++e) o[e] += p[j] * load_f32(v[e]);
      }
      for (std::int64_t e = 0; e < d; ++e) po[bh * d + e] = store_as<T>(o[e] / sum);
    }
  });
}

}  // namespace r1::kernels::cpu
