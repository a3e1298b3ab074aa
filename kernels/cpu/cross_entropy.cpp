// CPU reference cross-entropy: one row per OpenMP iteration, max then sum of exponentials in double.
#include <cmath>

#include "kernels/cpu/cross_entropy.hpp"
#include "kernels/dispatch.hpp"

namespace r1::kernels::cpu {

void cross_entropy_forward(const Tensor& logits, const Tensor& targets, const Tensor& losses, const Tensor& lse) {
  const std::int64_t rows = logits.dim(0), v = logits.dim(1);
  const std::int32_t* pt = targets.data<std::int32_t>();
  float* pl = losses.data<float>();
  float* plse = lse.data<float>();
  with_float_type(logits.dtype(), "cross_entropy_forward", [&](auto tag) {
    using T = decltype(tag);
    const T* px = logits.data<T>();
#pragma omp parallel for schedule(static)
    for (std::int64_t t = 0; t < rows; ++t) {
      const T* xr = px + t * v;
      double m = -INFINITY;
      for (std::int64_t j = 0; j < v; ++j) m = std::max(m, static_cast<double>(load_f32(xr[j])));
      double s = 0.0;
      for (std::int64_t j = 0; j < v; ++j) s += std::exp(load_f32(xr[j]) - m);
      const double l = m + std::log(s);
      plse[t] = static_cast<float>(l);
      pl[t] = pt[t] == -1 ? 0.0f : pt[t] == kTargetElsewhere ? static_cast<float>(l) : static_cast<float>(l - load_f32(xr[pt[t]]));
    }
  });
}

void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse, const Tensor& dloss,
                            const Tensor& dlogits) {
  const std::int64_t rows = logits.dim(0), v = logits.dim(1);
  const std::int32_t* pt = targets.data<std::int32_t>();
  const float* plse = lse.data<float>();
  const float* pd = dloss.data<float>();
  with_float_type(logits.dtype(), "cross_entropy_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* px = logits.data<T>();
    T* pg = dlogits.data<T>();  // may be px: each element is read before it is written
#pragma omp parallel for schedule(static)
    for (std::int64_t t = 0; t < rows; ++t) {
      const float d = pt[t] == -1 ? 0.0f : pd[t];
      for (std::int64_t j = 0; j < v; ++j) {
        const float p = std::exp(load_f32(px[t * v + j]) - plse[t]);
        pg[t * v + j] = store_as<T>((p - (j == pt[t] ? 1.0f : 0.0f)) * d);
      }
    }
  });
}

}  // namespace r1::kernels::cpu
