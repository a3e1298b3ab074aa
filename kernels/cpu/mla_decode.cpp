// CPU reference decode attention over the latent cache: one (sequence, head) at a time, f32 math.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/mla_decode.hpp"
#include "kernels/dispatch.hpp"

namespace r1::kernels::cpu {

void kv_cache_write(const Tensor& src, const Tensor& start, const Tensor& cache, const CacheBlocks& blocks) {
  const std::int64_t B = src.dim(0), S = src.dim(1);
  const std::size_t row = static_cast<std::size_t>(src.dim(2)) * dtype_size(src.dtype());
  const std::int32_t* st = start.data<std::int32_t>();
  const char* in = static_cast<const char*>(src.raw());
  char* out = static_cast<char*>(cache.raw());
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t s = 0; s < S; ++s)
      std::memcpy(out + static_cast<std::size_t>(blocks.row(b, st[b] + s)) * row,
                  in + static_cast<std::size_t>(b * S + s) * row, row);
}

void mla_decode_attention(const MlaDecodeShape& s, const Tensor& q, const Tensor& kv_b, const Tensor& cache_kv,
                          const Tensor& cache_pe, const Tensor& lengths, float scale, const Tensor& out) {
  const std::int64_t H = s.heads, dn = s.d_nope, dr = s.d_rope, dv = s.d_v, R = s.rank, L = s.max_len;
  const CacheBlocks& blocks = s.blocks;
  const std::int32_t* len = lengths.data<std::int32_t>();
  with_float_type(q.dtype(), "mla_decode_attention", [&](auto tag) {
    using T = decltype(tag);
    const T* pq = q.data<T>();
    const T* pw = kv_b.data<T>();
    const T* pkv = cache_kv.data<T>();
    const T* ppe = cache_pe.data<T>();
    T* po = out.data<T>();
#pragma omp parallel for schedule(static) if (s.batch * H * L * R >= (1 << 18))
    for (std::int64_t bh = 0; bh < s.batch * H; ++bh) {
      const std::int64_t b = bh / H, h = bh % H, n = len[b];
      const T* qr = pq + bh * (dn + dr);
      const T* wk = pw + h * (dn + dv) * R;
      const T* wv = wk + dn * R;
      std::vector<float> q_lat(static_cast<std::size_t>(R), 0.0f), o_lat(static_cast<std::size_t>(R), 0.0f);
      std::vector<float> p(static_cast<std::size_t>(n));
      for (std::int64_t d = 0; d < dn; ++d) {
        const float qd = load_f32(qr[d]);
        for (std::int64_t r = 0; r < R; ++r) q_lat[r] += qd * load_f32(wk[d * R + r]);
      }
      float m = -std::numeric_limits<float>::infinity();
      for (std::int64_t j = 0; j < n; ++j) {
        const T* c = pkv + blocks.row(b, j) * R;
        const T* pe = ppe + blocks.row(b, j) * dr;
        float a = 0.0f;
        for (std::int64_t r = 0; r < R; ++r) a += q_lat[r] * load_f32(c[r]);
        for (std::int64_t e = 0; e < dr; ++e) a += load_f32(qr[dn + e]) * load_f32(pe[e]);
        p[j] = a * scale;
        m = std::max(m, p[j]);
      }
      float sum = 0.0f;
      for (std::int64_t j = 0; j < n; ++j) {
        p[j] = std::exp(p[j] - m);
        sum += p[j];
        const T* c = pkv + blocks.row(b, j) * R;
        for (std::int64_t r = 0; r < R; ++r) o_lat[r] += p[j] * load_f32(c[r]);
      }
      for (std::int64_t v = 0; v < dv; ++v) {
        float a = 0.0f;
        for (std::int64_t r = 0; r < R; ++r) a += load_f32(wv[v * R + r]) * o_lat[r];
        po[bh * dv + v] = store_as<T>(a / sum);
      }
    }
  });
}

}  // namespace r1::kernels::cpu
