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
