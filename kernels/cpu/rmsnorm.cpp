// CPU reference RMSNorm: one row per OpenMP iteration, sums in double. The weight gradient is split by
// column blocks (each summed over all rows in row order), so it does not depend on the thread count.
#include <cmath>
#include <vector>

#include "kernels/cpu/rmsnorm.hpp"
#include "kernels/dispatch.hpp"

namespace r1::kernels::cpu {

void rmsnorm_forward(const Tensor& x, const Tensor& weight, float eps, const Tensor& y, const Tensor& rstd) {
  const std::int64_t rows = x.dim(0), d = x.dim(1);
  const float* w = weight.data<float>();
  float* pr = rstd.data<float>();
  with_float_type(x.dtype(), "rmsnorm_forward", [&](auto tag) {
    using X = decltype(tag);
    const X* px = x.data<X>();
    X* py = y.data<X>();
#pragma omp parallel for schedule(static)
    for (std::int64_t t = 0; t < rows; ++t) {
      const X* xr = px + t * d;
      double ss = 0.0;
      for (std::int64_t j = 0; j < d; ++j) ss += static_cast<double>(load_f32(xr[j])) * load_f32(xr[j]);
      const float r = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(d) + eps));
      pr[t] = r;
      for (std::int64_t j = 0; j < d; ++j) py[t * d + j] = store_as<X>(load_f32(xr[j]) * r * w[j]);
    }
  });
}

void rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& rstd, const Tensor& dx,
                      const Tensor& dweight) {
  const std::int64_t rows = x.dim(0), d = x.dim(1);
  const float* w = weight.data<float>();
  const float* pr = rstd.data<float>();
  float* dw = dweight.data<float>();
  with_float_type(x.dtype(), "rmsnorm_backward", [&](auto xtag) {
    with_float_type(dy.dtype(), "rmsnorm_backward", [&](auto gtag) {
      using X = decltype(xtag);
      using G = decltype(gtag);
      const X* px = x.data<X>();
      const G* pdy = dy.data<G>();
      G* pdx = dx.data<G>();
      // Weight gradient first: dx may alias dy.
      constexpr std::int64_t kCols = 64;
#pragma omp parallel for schedule(static)
      for (std::int64_t c0 = 0; c0 < d; c0 += kCols) {
        const std::int64_t c1 = std::min(d, c0 + kCols);
        double acc[kCols] = {};
        for (std::int64_t t = 0; t < rows; ++t)
          for (std::int64_t j = c0; j < c1; ++j)
            acc[j - c0] += static_cast<double>(load_f32(pdy[t * d + j])) * load_f32(px[t * d + j]) * pr[t];
        for (std::int64_t j = c0; j < c1; ++j) dw[j] += static_cast<float>(acc[j - c0]);
      }
#pragma omp parallel for schedule(static)
      for (std::int64_t t = 0; t < rows; ++t) {
        const float r = pr[t];
        double s = 0.0;
        for (std::int64_t j = 0; j < d; ++j)
          s += static_cast<double>(load_f32(pdy[t * d + j])) * w[j] * load_f32(px[t * d + j]);
        const float k = static_cast<float>(static_cast<double>(r) * r * s / static_cast<double>(d));
        for (std::int64_t j = 0; j < d; ++j)
          pdx[t * d + j] = store_as<G>(r * (w[j] * load_f32(pdy[t * d + j]) - load_f32(px[t * d + j]) * k));
      }
    });
  });
}

}  // namespace r1::kernels::cpu
