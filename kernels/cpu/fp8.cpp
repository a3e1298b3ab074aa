// CPU reference FP8 block quantisation: one tile at a time.
#include <cmath>
#include <cstring>

#include "kernels/cpu/fp8.hpp"
#include "kernels/dispatch.hpp"

namespace r1::kernels::cpu {

namespace {
// Every tile of out: max-abs, scale, values. out element (o, p) is x[o, p], or with Transposed x[p, o].
template <bool Transposed>
void quantize_tiles(const Tensor& x, const Fp8Tensor& out) {
  const std::int64_t cols = x.dim(1), out_rows = out.data.dim(0), out_cols = out.data.dim(1);
  const std::int64_t tr = out.scale_inv.dim(0), tc = out.scale_inv.dim(1);
  with_float_type(x.dtype(), "quantize_fp8", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    const auto at = [&](std::int64_t o, std::int64_t p) { return load_f32(px[Transposed ? p * cols + o : o * cols + p]); };
    f8e4m3* pq = out.data.data<f8e4m3>();
    float* ps = out.scale_inv.data<float>();
#pragma omp parallel for collapse(2) schedule(static)
    for (std::int64_t bi = 0; bi < tr; ++bi)
      for (std::int64_t bj = 0; bj < tc; ++bj) {
        const std::int64_t o0 = bi * out.block_rows, o1 = std::min(out_rows, o0 + out.block_rows);
        const std::int64_t p0 = bj * out.block_cols, p1 = std::min(out_cols, p0 + out.block_cols);
        float amax = 0.0f;
        for (std::int64_t o = o0; o < o1; ++o)
          for (std::int64_t p = p0; p < p1; ++p) amax = std::max(amax, std::fabs(at(o, p)));
        const float s = fp8_scale_inv(amax, out.pow2_scales);
        ps[bi * tc + bj] = s;
        for (std::int64_t o = o0; o < o1; ++o)
          for (std::int64_t p = p0; p < p1; ++p) pq[o * out_cols + p] = to_f8e4m3(at(o, p) / s);
      }
  });
}
}  // namespace

void quantize_fp8(const Tensor& x, const Fp8Tensor& out) { quantize_tiles<false>(x, out); }
void quantize_fp8_transposed(const Tensor& x, const Fp8Tensor& out) { quantize_tiles<true>(x, out); }

void relayout_fp8_scales(const Tensor& s, std::span<const Fp8Group> groups, bool blocks, const Tensor& out) {
  const float* ps = s.data<float>();
  float* po = out.data<float>();
  const std::int64_t tc = s.dim(1);
  for (const Fp8Group& g : groups) {
    const std::int64_t slots = blocks ? g.rows * fp8_round4(g.cols) : g.cols * fp8_round4(g.rows);
    for (std::int64_t i = 0; i < slots; ++i) {
      std::int64_t r, t;
      po[g.scales + i] = fp8_layout_slot(i, g.rows, g.cols, blocks, r, t) ? ps[(g.first + r) * tc + t] : 0.0f;
    }
  }
}

void quantize_fp8_groups(const Tensor& x, std::span<const Fp8Group> groups, bool columns, bool pow2, const Tensor& data,
                         const Tensor& scales) {
  const std::int64_t xc = x.dim(1);
  with_float_type(x.dtype(), "quantize_fp8_groups", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    f8e4m3* pq = data.data<f8e4m3>();
    float* ps = scales.data<float>();
    for (const Fp8Group& g : groups) {
      // Element (r, p) of the group's operand: x[first + r, p], or transposed x[first + p, r] (zero past its tokens).
      const auto at = [&](std::int64_t r, std::int64_t p) {
        if (!columns) return load_f32(px[(g.first + r) * xc + p]);
        return p < g.tokens ? load_f32(px[(g.first + p) * xc + r]) : 0.0f;
      };
      const std::int64_t kt = (g.cols + kFp8Tile - 1) / kFp8Tile, ld = fp8_round4(g.rows);
#pragma omp parallel for collapse(2) schedule(static)
      for (std::int64_t r = 0; r < ld; ++r)
        for (std::int64_t t = 0; t < kt; ++t) {
          float* s = ps + g.scales + t * ld + r;
          if (r >= g.rows) {
            *s = 0.0f;  // the layout's padding
            continue;
          }
          const std::int64_t p0 = t * kFp8Tile, p1 = std::min(g.cols, p0 + kFp8Tile);
          float amax = 0.0f;
          for (std::int64_t p = p0; p < p1; ++p) amax = std::max(amax, std::fabs(at(r, p)));
          *s = fp8_scale_inv(amax, pow2);
          for (std::int64_t p = p0; p < p1; ++p) pq[g.data + r * g.cols + p] = to_f8e4m3(at(r, p) / *s);
        }
    }
  });
}

void dequantize_fp8(const Fp8Tensor& q, const Tensor& y) {
  const std::int64_t rows = y.dim(0), cols = y.dim(1), tc = q.scale_inv.dim(1);
  with_float_type(y.dtype(), "dequantize_fp8", [&](auto tag) {
    using T = decltype(tag);
    T* py = y.data<T>();
    const f8e4m3* pq = q.data.data<f8e4m3>();
    const float* ps = q.scale_inv.data<float>();
#pragma omp parallel for schedule(static)
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < cols; ++c)
        py[r * cols + c] = store_as<T>(to_float(pq[r * cols + c]) * ps[(r / q.block_rows) * tc + c / q.block_cols]);
  });
}

void gather_fp8_rows(const Tensor& src, const Tensor& rows, const Tensor& dst) {
  const std::int64_t cols = dst.dim(1);
  const std::int32_t* idx = rows.data<std::int32_t>();
  const f8e4m3* ps = src.data<f8e4m3>();
  f8e4m3* pd = dst.data<f8e4m3>();
  for (std::int64_t r = 0; r < dst.dim(0); ++r)
    std::memcpy(pd + r * cols, ps + static_cast<std::int64_t>(idx[r]) * cols, static_cast<std::size_t>(cols) * sizeof(f8e4m3));
}

}  // namespace r1::kernels::cpu
