// CPU reference elementwise ops (OpenMP).
#include "kernels/cpu/elementwise.hpp"

#include "kernels/dispatch.hpp"

namespace r1::kernels::cpu {

void axpy(float alpha, const Tensor& x, const Tensor& y) {
  with_float_type(x.dtype(), "axpy", [&](auto tx) {
    with_float_type(y.dtype(), "axpy", [&](auto ty) {
      using TX = decltype(tx);
      using TY = decltype(ty);
      const TX* px = x.data<TX>();
      TY* py = y.data<TY>();
      const std::int64_t n = x.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
      for (std::int64_t i = 0; i < n; ++i) py[i] = store_as<TY>(load_f32(py[i]) + alpha * load_f32(px[i]));
    });
  });
}

void scale(float alpha, const Tensor& x) {
  with_float_type(x.dtype(), "scale", [&](auto tx) {
    using T = decltype(tx);
    T* p = x.data<T>();
    const std::int64_t n = x.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (std::int64_t i = 0; i < n; ++i) p[i] = store_as<T>(alpha * load_f32(p[i]));
  });
}

void fill(const Tensor& x, float value) {
  with_float8_type(x.dtype(), "fill", [&](auto tx) {
    using T = decltype(tx);
    T* p = x.data<T>();
    const T v = store_as<T>(value);
    const std::int64_t n = x.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (std::int64_t i = 0; i < n; ++i) p[i] = v;
  });
}

void cast(const Tensor& src, const Tensor& dst) {
  with_float8_type(src.dtype(), "cast", [&](auto ts) {
    with_float8_type(dst.dtype(), "cast", [&](auto td) {
      using TS = decltype(ts);
      using TD = decltype(td);
      const TS* ps = src.data<TS>();
      TD* pd = dst.data<TD>();
      const std::int64_t n = src.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
      for (std::int64_t i = 0; i < n; ++i) pd[i] = store_as<TD>(load_f32(ps[i]));
    });
  });
}

}  // namespace r1::kernels::cpu
