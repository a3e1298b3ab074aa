// CPU reference FP8 block quantisation: one tile at a time.
#include <cmath>

#include "kernels/cpu/fp8.hpp"
#include "kernels/dispatch.hpp"

namespace r1::kernels::cpu {

void quantize_fp8(const Tensor& x, const Fp8Tensor& out) {
  const std::int64_t rows = x.dim(0), cols = x.dim(1);
  const std::int64_t tr = out.scale_inv.dim(0), tc = out.scale_inv.dim(1);
  with_float_type(x.dtype(), "quantize_fp8", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    f8e4m3* pq = out.data.data<f8e4m3>();
    float* ps = out.scale_inv.data<float>();
#pragma omp parallel for collapse(2) schedule(static)
    for (std::int64_t bi = 0; bi < tr; ++bi)
      for (std::int64_t bj = 0; bj < tc; ++bj) {
        const std::int64_t r0 = bi * out.block_rows, r1 = std::min(rows, r0 + out.block_rows);
        const std::int64_t c0 = bj * out.block_cols, c1 = std::min(cols, c0 + out.block_cols);
        float amax = 0.0f;
        for (std::int64_t r = r0; r < r1; ++r)
          for (std::int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(load_f32(px[r * cols + c])));
        const float s = amax > 0.0f ? amax / kF8E4M3Max : 1.0f;
        ps[bi * tc + bj] = s;
        for (std::int64_t r = r0; r < r1; ++r)
          for (std::int64_t c = c0; c < c1; ++c) pq[r * cols + c] = to_f8e4m3(load_f32(px[r * cols + c]) / s);
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

}  // namespace r1::kernels::cpu
